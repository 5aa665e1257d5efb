#!/usr/bin/env bash
# The README demo as a test: examples/redis-queue run by the real arbiter with a real redis,
# a real plugin and trapeze listen as the bus subscriber. Fails on any missing step.
#   redis_queue.sh TRAPEZE EXAMPLE_BUILD_DIR
set -uo pipefail
trapeze=$1 example=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$example/demo.sh" "$trapeze" > "$out" 2>&1
status=$?
fail=0
expect() {  # expect DESCRIPTION PATTERN
  if ! grep -qE -- "$2" "$out"; then
    echo "FAIL: $1 (no line matching: $2)"
    fail=1
  fi
}
[ $status -eq 0 ] || { echo "FAIL: demo.sh exited $status"; fail=1; }
# At start: redis first, then the worker, once its before_start hook succeeded.
# redis is active (its start event) before the worker's hook runs.
redis_line=$(grep -n '"topic":"watcher.redis.start"' "$out" | head -1 | cut -d: -f1)
hook_line=$(grep -n '"topic":"watcher.queue-worker.hook_success"' "$out" | head -1 | cut -d: -f1)
if [ -z "$redis_line" ] || [ -z "$hook_line" ] || [ "$redis_line" -ge "$hook_line" ]; then
  echo "FAIL: redis starts first (redis start at line ${redis_line:-none}, the worker's hook at ${hook_line:-none})"
  fail=1
fi
expect "the hook succeeds at start" '"topic":"watcher.queue-worker.hook_success".*"name":"before_start"'
expect "the worker starts after the hook" '"topic":"watcher.queue-worker.start"'
# With redis stopped, the hook vetoes the worker's start, and it stays stopped.
expect "the veto, on the bus" 'event: watcher.queue-worker.hook_failure .*"error":"vetoed".*"name":"before_start"'
expect "the worker stays stopped" '^  queue-worker +stopped$'
# With redis back, the worker starts and does its jobs.
expect "the worker's start, on the bus" 'event: watcher.queue-worker.start '
expect "the jobs are done" 'worker [0-9]+: done build-report'
expect "orderly stop, worker first" 'event: watcher.queue-worker.stop .*'
expect "the arbiter stops last" 'event: arbiter.stop '
if [ $fail -ne 0 ]; then
  echo "--- demo output:"
  cat "$out"
  exit 1
fi
echo "redis-queue example: every step seen"
