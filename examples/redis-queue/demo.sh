#!/usr/bin/env bash
# The redis-queue demo: circus's hooks example, run by trapeze with redis-server from Debian.
#
#   demo.sh [TRAPEZE]      (from the build tree: build/examples/redis-queue/demo.sh)
#
# Starts the arbiter on circus.ini, shows what happened at start (redis first, then the worker
# once its before_start hook got a PONG), then drives it while `trapeze listen` prints the
# events live: with redis stopped the hook vetoes the worker's start; with redis back it lets
# it start, and the worker does the jobs it is given.
set -euo pipefail
cd "$(dirname "$0")"
trapeze=${1:-trapeze}
for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "demo: needs $tool (apt-get install redis-server)" >&2; exit 1; }
done
if redis-cli -p 6390 ping >/dev/null 2>&1; then
  echo "demo: something already answers on port 6390; stop it first" >&2
  exit 1
fi

run=$(mktemp -d)
arbiter="" listener=""
cleanup() {
  [ -n "$listener" ] && kill "$listener" 2>/dev/null || true
  if [ -n "$arbiter" ] && kill -TERM "$arbiter" 2>/dev/null; then wait "$arbiter" || true; fi
  rm -rf "$run"
}
trap cleanup EXIT

# Waits (20 s at most) until FILE has a line matching PATTERN after line SKIP.
wait_for() {
  local file=$1 skip=$2 pattern=$3
  for _ in $(seq 200); do
    tail -n +"$((skip + 1))" "$file" 2>/dev/null | grep -q -- "$pattern" && return 0
    sleep 0.1
  done
  echo "demo: no '$pattern' within 20 s; the arbiter's log:" >&2
  cat "$run/arbiter.log" >&2
  exit 1
}
shown=0
# Runs a command, then prints the events it caused, up to one matching PATTERN.
step() {
  local pattern=$1; shift
  local shown_command="$*"
  echo
  echo "\$ ${shown_command/#"$trapeze"/trapeze}"
  "$@" | sed 's/^/  /'
  wait_for "$run/events" "$shown" "$pattern"
  tail -n +"$((shown + 1))" "$run/events" | sed 's/^/  event: /'
  shown=$(wc -l < "$run/events")
}

echo "==> trapeze run circus.ini   (redis at priority 1, the queue worker at priority 2)"
"$trapeze" run circus.ini --events-file "$run/start.jsonl" --log-output "$run/arbiter.log" &
arbiter=$!
wait_for "$run/start.jsonl" 0 '"watcher.queue-worker.start"'
echo "    what happened at start (trapeze run --events-file):"
sed 's/^/    /' "$run/start.jsonl"

echo
echo "==> trapeze listen: the event bus, live, while we drive the arbiter"
"$trapeze" -c circus.ini listen > "$run/events" &
listener=$!
# A subscription is live once it sees an event: reloadconfig changes nothing and says so.
for _ in $(seq 50); do
  "$trapeze" -c circus.ini reloadconfig >/dev/null
  sleep 0.1
  grep -q arbiter.reload "$run/events" && break
done
shown=$(wc -l < "$run/events")

step 'watcher.queue-worker.stop ' "$trapeze" -c circus.ini stop queue-worker
step 'watcher.redis.stop ' "$trapeze" -c circus.ini stop redis
step 'watcher.queue-worker.hook_failure ' "$trapeze" -c circus.ini start queue-worker
echo "  (redis is down: check_redis vetoed the start; the worker stays stopped)"
"$trapeze" -c circus.ini status | sed 's/^/  /'
step 'watcher.redis.start ' "$trapeze" -c circus.ini start redis
step 'watcher.queue-worker.start ' "$trapeze" -c circus.ini start queue-worker
echo
echo "\$ redis-cli -p 6390 RPUSH jobs resize-image send-mail build-report"
redis-cli -p 6390 RPUSH jobs resize-image send-mail build-report | sed 's/^/  /'
for _ in $(seq 100); do
  "$trapeze" -c circus.ini logs queue-worker | grep -q build-report && break
  sleep 0.1
done
echo
echo "\$ trapeze -c circus.ini logs queue-worker"
"$trapeze" -c circus.ini logs queue-worker | sed 's/^/  /'
echo
echo "==> SIGTERM: the worker stops first, then redis"
kill -TERM "$arbiter"
wait "$arbiter"
arbiter=""
tail -n +"$((shown + 1))" "$run/events" | grep -E '\.(stop|reap) ' | sed 's/^/  event: /' || true
