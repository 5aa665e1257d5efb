// circus's variable syntax in option values.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace trapeze::conf::detail {

/// Replaces $(circus.env.NAME) and ((circus.env.NAME)) (also spelled with "trapeze." instead of
/// "circus.", case-insensitive, as circus's replace_gnu_args) with env[NAME]. Every other
/// $(circus.X), such as $(circus.wid) and $(circus.sockets.NAME), is left as written for the
/// spawner. Names of env variables that are not set are appended to `unset` (when given) and
/// left as written.
std::string interpolate(std::string_view value, const std::map<std::string, std::string>& env,
                        std::vector<std::string>* unset);

/// A variable reference found in a value: its full text and the name after "circus."
/// ("env.HOME", "sockets.web", "wid"), lower-cased.
struct VarRef {
  std::string text;
  std::string name;
};
std::vector<VarRef> find_vars(std::string_view value);

/// circus's env values: $NAME (upper-case letters, digits, '_', starting with a letter) is
/// replaced from `env`. Names not set are appended to `unset` and replaced by nothing. With
/// `dollar_escape` (TOML, which has no other way to keep a literal $NAME), "$$" is one '$'.
std::string expand_env_value(std::string_view value, const std::map<std::string, std::string>& env,
                             std::vector<std::string>* unset, bool dollar_escape = false);

}  // namespace trapeze::conf::detail
