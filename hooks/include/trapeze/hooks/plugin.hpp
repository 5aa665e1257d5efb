// Loading hook functions from plugin shared objects.
#pragma once

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "trapeze/hook.h"

namespace trapeze::hooks {

/// Thrown when a plugin or one of its functions cannot be used; what() says why.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Opens each plugin file once (RTLD_NOW | RTLD_LOCAL) and never closes it: a hook thread
/// abandoned after a timeout may still be running its code. Thread-safe.
class PluginLoader {
 public:
  /// Returns `symbol` from `library`. Throws PluginError when the file cannot be opened, does
  /// not declare TRAPEZE_PLUGIN() for this ABI version, or lacks the symbol.
  trapeze_hook_fn load(const std::string& library, const std::string& symbol);

 private:
  std::mutex mutex_;
  std::map<std::string, void*> handles_;
};

}  // namespace trapeze::hooks
