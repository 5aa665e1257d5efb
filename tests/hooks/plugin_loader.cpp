// Loading hook functions from real shared objects built beside this test.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "trapeze/hooks/plugin.hpp"

using trapeze::hooks::PluginError;
using trapeze::hooks::PluginLoader;

namespace {

std::string load_error(PluginLoader& loader, const std::string& library, const std::string& symbol) {
  try {
    loader.load(library, symbol);
    return "(loaded)";
  } catch (const PluginError& e) {
    return e.what();
  }
}

}  // namespace

TEST_CASE("a plugin's hook is found and runs", "[unit][hooks]") {
  PluginLoader loader;
  trapeze_hook_fn fn = loader.load(TEST_PLUGIN_GOOD, "go_on");
  REQUIRE(fn != nullptr);
  trapeze_hook_call call{};
  call.struct_size = sizeof call;
  call.abi_version = TRAPEZE_HOOK_ABI_VERSION;
  CHECK(fn(&call) == TRAPEZE_HOOK_CONTINUE);
  CHECK(loader.load(TEST_PLUGIN_GOOD, "go_on") == fn);  // opened once, same function
}

TEST_CASE("plugin load errors say what is wrong", "[unit][hooks]") {
  PluginLoader loader;
  CHECK(load_error(loader, TEST_PLUGIN_GOOD, "no_such_hook") ==
        std::string("plugin '") + TEST_PLUGIN_GOOD + "' has no function 'no_such_hook'");
  CHECK(load_error(loader, TEST_PLUGIN_FUTURE, "go_on") ==
        std::string("cannot load plugin '") + TEST_PLUGIN_FUTURE +
            "': it was built for hook ABI version 2, this trapeze speaks version 1");
  // Refused once, refused every time: a refused file is never half-loaded.
  CHECK(load_error(loader, TEST_PLUGIN_FUTURE, "go_on") ==
        std::string("cannot load plugin '") + TEST_PLUGIN_FUTURE +
            "': it was built for hook ABI version 2, this trapeze speaks version 1");
  CHECK(load_error(loader, TEST_PLUGIN_BIGGER, "go_on") ==
        std::string("cannot load plugin '") + TEST_PLUGIN_BIGGER +
            fmt::format("': it was built with a newer <trapeze/hook.h> (trapeze_hook_call of {} bytes, "
                        "this trapeze's has {})",
                        sizeof(trapeze_hook_call) + 16, sizeof(trapeze_hook_call)));
  CHECK(load_error(loader, "/nonexistent/plugin.so", "go_on") ==
        "cannot load plugin '/nonexistent/plugin.so': /nonexistent/plugin.so: cannot open shared object "
        "file: No "
        "such file or directory");
}
