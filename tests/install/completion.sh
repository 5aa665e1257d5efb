#!/usr/bin/env bash
# The bash completion as a shell uses it: subcommands, options, and watcher names asked of a
# running arbiter.   completion.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
source /usr/share/bash-completion/bash_completion
source "$src/packaging/trapeze.bash-completion"
PATH="$build/arbiter:$PATH"
# The arbiter's answer may take more than the completion's usual 1 s in a sanitizer build on
# a loaded machine.
export TRAPEZE_COMPLETION_TIMEOUT=20
fail=0

complete_line() {  # complete_line WORD...: prints the candidates for the last word, sorted
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="${COMP_WORDS[*]}"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _trapeze trapeze "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  if ((${#COMPREPLY[@]})); then printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "; fi
}

expect() {  # expect "WANTED" WORD...
  local want=$1; shift
  local got
  got=$(complete_line "$@")
  if [[ $got != "$want" ]]; then
    echo "FAIL: '$*' completes to '$got', expected '$want'"
    fail=1
  fi
}

expect "start stats status stop " trapeze st
expect "reload reloadconfig " trapeze -c x.ini rel
expect "--children --config --endpoint --help --json --pid --recursive --timeout " trapeze signal --
expect "debug " trapeze run --log-level de

dir=$(mktemp -d)
arbiter=""
cleanup() {
  # SIGTERM: the arbiter stops its own children before it exits.
  if [[ -n $arbiter ]]; then kill -TERM "$arbiter" 2>/dev/null || true; wait "$arbiter" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
cat > "$dir/c.ini" <<INI
[circus]
endpoint = ipc://$dir/control
pubsub_endpoint = ipc://$dir/events
[watcher:web]
cmd = sleep
args = 1000
[watcher:worker]
cmd = sleep
args = 1000
INI
trapeze run "$dir/c.ini" --pidfile "$dir/pid" --log-output "$dir/log" &
arbiter=$!
for _ in $(seq 100); do trapeze -c "$dir/c.ini" --timeout 0.1 status >/dev/null 2>&1 && break; done
expect "web worker " trapeze -c "$dir/c.ini" stop w
expect "web " trapeze -c "$dir/c.ini" incr we
expect "" trapeze -c "$dir/c.ini" incr web w  # the second positional is a count
# No arbiter: no names, and no error on the terminal.
TRAPEZE_COMPLETION_TIMEOUT=1 expect "" trapeze --endpoint "ipc://$dir/nobody" status w

[[ $fail == 0 ]] && echo "completion: all cases pass"
exit $fail
