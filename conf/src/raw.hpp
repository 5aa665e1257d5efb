// The loaders' common output: sections of located key/value entries, before any typing.
// INI yields strings only; TOML yields typed scalars and string arrays. The builder
// (build.cpp) turns a RawDoc into a Config, so both formats share every check.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <map>

#include "trapeze/conf/config.hpp"
#include "trapeze/conf/load.hpp"

namespace trapeze::conf::detail {

using RawScalar = std::variant<std::string, std::int64_t, double, bool, std::vector<std::string>>;

struct RawEntry {
  std::string key;  // dotted for nested options: "stdout_stream.class", "hooks.before_start"
  RawScalar value;
  Location where;
};

/// Section names use the INI spelling whatever the source: "circus", "env", "env:PATTERNS",
/// "watcher:NAME", "socket:NAME", "plugin:NAME", "juju".
struct RawSection {
  std::string name;
  Location where;
  std::vector<RawEntry> entries;

  const RawEntry* find(std::string_view key) const;
};

enum class Format { ini, toml };

struct RawDoc {
  Format format = Format::ini;
  std::vector<std::string> files;
  std::vector<RawSection> sections;
  std::vector<Diagnostic> diagnostics;  // errors and warnings found while reading

  RawSection* find(std::string_view name);
  const RawSection* find(std::string_view name) const;
};

/// Reads the circus INI dialect, then the files named by [circus] include / include_dir
/// (globs relative to the main file, expanded with `environ`) unless `follow_includes` is
/// false. Errors go to doc.diagnostics.
RawDoc read_ini(const std::string& text, const std::string& path,
                const std::map<std::string, std::string>& environ, bool follow_includes);
/// Reads the native TOML format. Errors go to doc.diagnostics.
RawDoc read_toml(const std::string& text, const std::string& path);

/// Builds and validates the model. Every error and warning goes to `out`.
Config build(const RawDoc& doc, const std::string& path, const LoadOptions& options,
             std::vector<Diagnostic>& out);

/// Reads a whole file; throws ConfigError naming the file on failure.
std::string read_file(const std::string& path);

}  // namespace trapeze::conf::detail
