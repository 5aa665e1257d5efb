#include "hooks.hpp"

#include <sys/stat.h>

#include <filesystem>

#include <fmt/format.h>

#include "text.hpp"

namespace trapeze::conf::detail {
namespace {

namespace fs = std::filesystem;

bool is_identifier(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

/// What is wrong with using `path` as a plugin, or nullopt.
std::optional<std::string> check_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return fmt::format("cannot use plugin {}: {}", quote(path), std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fmt::format("cannot use plugin {}: not a regular file", quote(path));
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return fmt::format("refusing plugin {}: it is writable by group or others (chmod go-w)", quote(path));
  return std::nullopt;
}

}  // namespace

std::optional<std::string> resolve_hook(HookConfig& hook, const std::vector<std::string>& plugin_dirs,
                                        const std::string& config_dir, bool check_files) {
  const std::string& spec = hook.spec;
  if (auto colon = spec.rfind(':'); colon != std::string::npos) {
    std::string file = spec.substr(0, colon);
    hook.symbol = spec.substr(colon + 1);
    if (file.empty() || !is_identifier(hook.symbol))
      return fmt::format("expected 'path/to/library.so:function', got {}", quote(spec));
    fs::path p(file);
    if (p.is_relative()) p = fs::path(config_dir.empty() ? "." : config_dir) / p;
    hook.library = fs::absolute(p).lexically_normal().string();
    if (!check_files) return std::nullopt;
    return check_file(hook.library);
  }

  auto dot = spec.rfind('.');
  if (dot == std::string::npos || dot == 0)
    return fmt::format("expected 'path/to/library.so:function' or 'package.module.function', got {}",
                       quote(spec));
  std::string module = spec.substr(0, dot);
  hook.symbol = spec.substr(dot + 1);
  if (!is_identifier(hook.symbol))
    return fmt::format("{} is not a function name in hook {}", quote(hook.symbol), quote(spec));
  std::string nested = module;
  for (char& c : nested)
    if (c == '.') c = '/';
  std::vector<std::string> candidates = {nested + ".so"};
  if (nested != module) candidates.push_back(module + ".so");

  std::string searched;
  for (const auto& dir : plugin_dirs) {
    for (const auto& candidate : candidates) {
      fs::path p = fs::path(dir) / candidate;
      if (!check_files || fs::exists(p)) {
        hook.library = fs::absolute(p).lexically_normal().string();
        return check_files ? check_file(hook.library) : std::nullopt;
      }
    }
    searched += (searched.empty() ? "" : ", ") + dir;
  }
  std::string names = candidates.size() == 1 ? candidates[0] : candidates[0] + " or " + candidates[1];
  return fmt::format("cannot find {} for hook {} in the plugin directories: {}", names, quote(spec),
                     searched.empty() ? "(none)" : searched);
}

}  // namespace trapeze::conf::detail
