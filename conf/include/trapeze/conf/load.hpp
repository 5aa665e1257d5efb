// Loading a config file into the model: the one entry point for `trapeze check` and `trapeze run`.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "trapeze/conf/config.hpp"

namespace trapeze::conf {

/// What a load may look at besides the file itself. Tests inject all of it.
struct LoadOptions {
  /// The arbiter's environment: the base of copy_env and of $(circus.env.X).
  std::map<std::string, std::string> environ;
  /// Check that hook specs resolve to a file with the symbol (dlopen). Off for pure parsing tests.
  bool resolve_hooks = true;
  /// Warn when a watcher's cmd is not found on PATH.
  bool check_commands = true;
  /// Read the files an INI config's include / include_dir name. Off, they are not looked for
  /// (no warning either): the fuzz targets read no file but the text they are given.
  bool follow_includes = true;
  /// Appended to the config's plugin_dirs: the installed plugin directory.
  std::vector<std::string> default_plugin_dirs;

  /// The process's own environment and the installed plugin directory.
  static LoadOptions from_process();
};

/// Thrown by load() when the config has errors. Carries every error found (in file order),
/// then the warnings; what() is the first error as "file:line: key: message".
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

/// Reads `path` (TOML when it ends in .toml, else the circus INI dialect), follows includes,
/// builds and validates the model. Blocks on file I/O; call before any loop runs.
/// Throws ConfigError; never returns a config that has errors.
Config load(const std::string& path, const LoadOptions& options);

/// For an arbiter about to run as root: a warning for each watcher without `uid`, whose
/// processes would run as root too ("file:line: warning: uid: ..."). The caller decides
/// whether it runs as root; `trapeze check` and `trapeze run` ask geteuid().
std::vector<Diagnostic> root_warnings(const Config& config);

/// The same, from text: `name` is used in messages and to resolve relative paths.
Config load_ini_text(const std::string& text, const std::string& name, const LoadOptions& options);
Config load_toml_text(const std::string& text, const std::string& name, const LoadOptions& options);

}  // namespace trapeze::conf
