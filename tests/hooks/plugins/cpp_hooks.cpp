// Hooks written with the C++ layer: an exception becomes an error, never a crash.
#include <stdexcept>

#include <trapeze/hook.hpp>

TRAPEZE_PLUGIN();

TRAPEZE_HOOK(throws) {
  if (call.option("port")) throw std::runtime_error("connection refused on port " + *call.option("port"));
  throw 42;  // not a std::exception
}

TRAPEZE_HOOK(proceeds) {
  call.info("proceeding for " + std::string(call.watcher()));
  return call.cancelled() ? trapeze::plugin::Result::veto : trapeze::plugin::Result::proceed;
}
