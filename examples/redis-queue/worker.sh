#!/bin/sh
# The queue worker: takes jobs off the redis list "jobs", one at a time, and says what it did.
# It needs redis from its first instant: trapeze starts it only once check_redis got a PONG.
while job=$(redis-cli -p 6390 --raw BLPOP jobs 0 | tail -n 1); do
  [ -n "$job" ] || exit 1
  echo "worker $$: done $job"
done
echo "worker $$: lost redis" >&2
exit 1
