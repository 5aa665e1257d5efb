#include "trapeze/conf/load.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "raw.hpp"

extern char** environ;

namespace trapeze::conf {

std::string to_string(const Diagnostic& d) {
  std::string out;
  if (!d.where.file.empty())
    out += d.where.file + (d.where.line > 0 ? fmt::format(":{}", d.where.line) : "") + ": ";
  if (d.severity == Severity::warning) out += "warning: ";
  if (!d.key.empty()) out += d.key + ": ";
  return out + d.message;
}

std::string_view to_string(StreamKind k) {
  switch (k) {
    case StreamKind::inherit:
      return "inherit";
    case StreamKind::null:
      return "null";
    case StreamKind::stdout:
      return "stdout";
    case StreamKind::file:
      return "file";
    case StreamKind::timed_rotating_file:
      return "timed_rotating_file";
    case StreamKind::watched_file:
      return "watched_file";
  }
  return "?";
}

std::string_view to_string(ReadyKind k) {
  switch (k) {
    case ReadyKind::none:
      return "none";
    case ReadyKind::tcp:
      return "tcp";
    case ReadyKind::http:
      return "http";
    case ReadyKind::exec:
      return "exec";
    case ReadyKind::log:
      return "log";
    case ReadyKind::notify:
      return "notify";
    case ReadyKind::notification_fd:
      return "notification_fd";
  }
  return "?";
}

std::string_view to_string(OnCheckFailure f) {
  return f == OnCheckFailure::ignore ? "ignore" : "restart";
}

std::string_view to_string(PriorityOrder o) {
  return o == PriorityOrder::ascending ? "ascending" : "descending";
}
std::string_view to_string(JujuMode m) {
  return m == JujuMode::exec ? "exec" : "direct";
}

const WatcherConfig* Config::find_watcher(std::string_view name) const {
  for (const auto& w : watchers)
    if (w.name == name) return &w;
  return nullptr;
}

namespace {

std::string first_error(const std::vector<Diagnostic>& ds) {
  for (const auto& d : ds)
    if (d.severity == Severity::error) return to_string(d);
  return "invalid config";
}

/// Errors first, each group in the order found; exact repeats (an [env:*] value seen by
/// every watcher) are dropped.
std::vector<Diagnostic> tidy(std::vector<Diagnostic> ds) {
  std::vector<Diagnostic> out;
  for (auto& d : ds)
    if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(std::move(d));
  std::stable_partition(out.begin(), out.end(),
                        [](const Diagnostic& d) { return d.severity == Severity::error; });
  return out;
}

Config finish(detail::RawDoc doc, const std::string& path, const LoadOptions& options) {
  std::vector<Diagnostic> diagnostics = std::move(doc.diagnostics);
  Config config = detail::build(doc, path, options, diagnostics);
  diagnostics = tidy(std::move(diagnostics));
  if (!diagnostics.empty() && diagnostics.front().severity == Severity::error)
    throw ConfigError(std::move(diagnostics));
  config.warnings = std::move(diagnostics);
  return config;
}

bool is_toml(const std::string& path) {
  return path.size() > 5 && path.ends_with(".toml");
}

}  // namespace

ConfigError::ConfigError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(first_error(diagnostics)), diagnostics_(std::move(diagnostics)) {}

LoadOptions LoadOptions::from_process() {
  LoadOptions options;
  for (char** e = ::environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string_view::npos) options.environ.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
#ifdef TRAPEZE_PLUGIN_DIR
  options.default_plugin_dirs.push_back(TRAPEZE_PLUGIN_DIR);
#endif
  return options;
}

namespace detail {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw ConfigError(
        {{Severity::error, {path, 0}, "", fmt::format("cannot read the file: {}", std::strerror(errno))}});
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    throw ConfigError(
        {{Severity::error, {path, 0}, "", fmt::format("cannot read the file: {}", std::strerror(errno))}});
  return text.str();
}

const RawEntry* RawSection::find(std::string_view key) const {
  for (const auto& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}

RawSection* RawDoc::find(std::string_view name) {
  for (auto& s : sections)
    if (s.name == name) return &s;
  return nullptr;
}

const RawSection* RawDoc::find(std::string_view name) const {
  return const_cast<RawDoc*>(this)->find(name);
}

}  // namespace detail

std::vector<Diagnostic> root_warnings(const Config& config) {
  std::vector<Diagnostic> out;
  for (const auto& w : config.watchers)
    if (!w.uid)
      out.push_back({Severity::warning, w.where, "uid",
                     fmt::format("the arbiter runs as root and no uid is given: the processes of watcher {} "
                                 "will run as root",
                                 w.name)});
  return out;
}

Config load(const std::string& path, const LoadOptions& options) {
  std::string text = detail::read_file(path);
  return is_toml(path) ? load_toml_text(text, path, options) : load_ini_text(text, path, options);
}

Config load_ini_text(const std::string& text, const std::string& name, const LoadOptions& options) {
  return finish(detail::read_ini(text, name, options.environ, options.follow_includes), name, options);
}

Config load_toml_text(const std::string& text, const std::string& name, const LoadOptions& options) {
  return finish(detail::read_toml(text, name), name, options);
}

}  // namespace trapeze::conf
