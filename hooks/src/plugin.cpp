#include "trapeze/hooks/plugin.hpp"

#include <dlfcn.h>

#include <fmt/format.h>

namespace trapeze::hooks {

trapeze_hook_fn PluginLoader::load(const std::string& library, const std::string& symbol) {
  std::lock_guard lock(mutex_);
  auto it = handles_.find(library);
  if (it == handles_.end()) {
    ::dlerror();
    void* handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      throw PluginError(fmt::format("cannot load plugin '{}': {}", library, why ? why : "unknown error"));
    }
    // Never dlclose, even a refused plugin: its constructors have run and may have left threads.
    auto* version = static_cast<const std::uint32_t*>(::dlsym(handle, TRAPEZE_PLUGIN_ABI_SYMBOL));
    if (version == nullptr)
      throw PluginError(
          fmt::format("cannot load plugin '{}': it does not declare TRAPEZE_PLUGIN() "
                      "(see <trapeze/hook.h>)",
                      library));
    if (*version != TRAPEZE_HOOK_ABI_VERSION)
      throw PluginError(
          fmt::format("cannot load plugin '{}': it was built for hook ABI version {}, "
                      "this trapeze speaks version {}",
                      library, *version, TRAPEZE_HOOK_ABI_VERSION));
    it = handles_.emplace(library, handle).first;
  }
  ::dlerror();
  void* fn = ::dlsym(it->second, symbol.c_str());
  if (fn == nullptr) throw PluginError(fmt::format("plugin '{}' has no function '{}'", library, symbol));
  return reinterpret_cast<trapeze_hook_fn>(fn);
}

}  // namespace trapeze::hooks
