#!/usr/bin/env bash
# Installs the build into a scratch prefix, builds examples/hello-plugin against it the way a
# third party would (find_package(trapeze), then pkg-config), and has the installed trapeze
# check a config that loads the plugin. Also: a plugin without TRAPEZE_PLUGIN() is refused.
# usage: install_and_build_plugin.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
test -x "$prefix/bin/trapeze"
test -f "$prefix/include/trapeze/hook.h"

cmake -S "$src/examples/hello-plugin" -B "$scratch/b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/b" >/dev/null
mkdir "$scratch/app"
cp "$src/examples/hello-plugin/hello.ini" "$scratch/app/"
install -m 0755 "$scratch/b/hello.so" "$scratch/app/hello.so"
"$prefix/bin/trapeze" check "$scratch/app/hello.ini" >"$scratch/out.toml" 2>"$scratch/err.txt" || {
  cat "$scratch/err.txt"; echo "FAIL: trapeze check on the example plugin"; exit 1; }
grep -q "spec = 'hello.so:say_hello'" "$scratch/out.toml" || { cat "$scratch/out.toml"; echo "FAIL: normalized output"; exit 1; }

pc=$(dirname "$(find "$prefix" -name trapeze.pc | head -n1)")
cflags=$(PKG_CONFIG_PATH=$pc pkg-config --cflags trapeze)
cc -std=c99 -Wall -Werror -shared -fPIC $cflags "$src/examples/hello-plugin/hello.c" -o "$scratch/app/hello.so"
"$prefix/bin/trapeze" check "$scratch/app/hello.ini" >/dev/null 2>&1 || { echo "FAIL: pkg-config build"; exit 1; }

# A shared object that never said TRAPEZE_PLUGIN() is not a trapeze plugin.
printf '#include <trapeze/hook.h>\ntrapeze_hook_result say_hello(const trapeze_hook_call* c) { (void)c; return TRAPEZE_HOOK_CONTINUE; }\n' >"$scratch/bare.c"
cc -shared -fPIC $cflags "$scratch/bare.c" -o "$scratch/app/hello.so"
set +e
"$prefix/bin/trapeze" check "$scratch/app/hello.ini" >/dev/null 2>"$scratch/err.txt"
rc=$?
set -e
[ "$rc" = 2 ] || { echo "FAIL: expected exit 2 for a plugin without TRAPEZE_PLUGIN(), got $rc"; exit 1; }
expected="$scratch/app/hello.ini:4: hooks.before_start: cannot load plugin '$scratch/app/hello.so': it does not declare TRAPEZE_PLUGIN() (see <trapeze/hook.h>)"
grep -qxF "$expected" "$scratch/err.txt" || { echo "FAIL: got:"; cat "$scratch/err.txt"; echo "expected: $expected"; exit 1; }
echo "install, find_package, pkg-config and plugin loading: ok"
