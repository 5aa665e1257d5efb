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
    auto* info = static_cast<const trapeze_plugin_info*>(::dlsym(handle, TRAPEZE_PLUGIN_SYMBOL));
    if (info == nullptr)
      throw PluginError(
          fmt::format("cannot load plugin '{}': it does not declare TRAPEZE_PLUGIN() "
                      "(see <trapeze/hook.h>)",
                      library));
    if (info->abi_version != TRAPEZE_HOOK_ABI_VERSION)
      throw PluginError(
          fmt::format("cannot load plugin '{}': it was built for hook ABI version {}, "
                      "this trapeze speaks version {}",
                      library, info->abi_version, TRAPEZE_HOOK_ABI_VERSION));
    // Fields are only ever appended: a plugin from an older header of the same version reads
    // a prefix of ours; one from a newer header would read past our end.
    if (info->call_size > sizeof(trapeze_hook_call))
      throw PluginError(
          fmt::format("cannot load plugin '{}': it was built with a newer <trapeze/hook.h> "
                      "(trapeze_hook_call of {} bytes, this trapeze's has {})",
                      library, info->call_size, sizeof(trapeze_hook_call)));
    it = handles_.emplace(library, handle).first;
  }
  ::dlerror();
  void* fn = ::dlsym(it->second, symbol.c_str());
  if (fn == nullptr) throw PluginError(fmt::format("plugin '{}' has no function '{}'", library, symbol));
  return reinterpret_cast<trapeze_hook_fn>(fn);
}

}  // namespace trapeze::hooks
