// Where a hook's code lives: from the config's spec to a shared object path and a symbol.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "trapeze/conf/config.hpp"

namespace trapeze::conf::detail {

/// Sets hook.library and hook.symbol from hook.spec:
///   "path/lib.so:symbol"   the path relative to `config_dir` unless absolute;
///   "pkg.module.function"  pkg/module.so, then pkg.module.so, in each of `plugin_dirs`.
/// With `check_files`, the file must exist, be a regular file and not be writable by group or
/// others. Returns what is wrong, or nullopt. Does not load the library (see hooks/).
std::optional<std::string> resolve_hook(HookConfig& hook, const std::vector<std::string>& plugin_dirs,
                                        const std::string& config_dir, bool check_files);

}  // namespace trapeze::conf::detail
