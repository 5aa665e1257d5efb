// From raw sections to the model. This is the one validator both formats go through: every
// key is looked up in a table of what its section accepts, typed, range-checked, and unknown
// keys get a "did you mean". circus semantics for env and interpolation follow circus/config.py.
#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "hooks.hpp"
#include "interpolate.hpp"
#include "raw.hpp"
#include "text.hpp"
#include "values.hpp"

namespace trapeze::conf::detail {
namespace {

namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;

const std::vector<std::string> kHookPoints = {"before_start", "after_start", "before_spawn",  "after_spawn",
                                              "before_stop",  "after_stop",  "before_signal", "after_signal",
                                              "before_reap",  "after_reap"};
const std::vector<std::string> kRlimits = {"as",      "core",     "cpu",        "data",   "fsize", "locks",
                                           "memlock", "msgqueue", "nice",       "nofile", "nproc", "rss",
                                           "rtprio",  "rttime",   "sigpending", "stack"};

/// Options circus knows that trapeze deliberately does not act on, with the reason shown.
const std::map<std::string, std::string> kIgnoredArbiterOptions = {
    {"check_delay", "trapeze does not poll: a child's exit is seen at once"},
    {"statsd", "trapeze has no statsd; `trapeze stats` reports the figures"},
    {"stats_endpoint", "trapeze has no statsd; `trapeze stats` reports the figures"},
    {"statsd_close_outputs", "trapeze has no statsd"},
    {"multicast_endpoint", "trapeze has no multicast discovery"},
    {"httpd", "circus-web is not supported"},
    {"httpd_host", "circus-web is not supported"},
    {"httpd_port", "circus-web is not supported"},
    {"httpd_close_outputs", "circus-web is not supported"},
    {"debug_gc", "a Python garbage collector option"},
    {"loggerconfig", "a Python logging config; use loglevel and logoutput"},
    {"stream_backend", "a Python threading option"},
    {"fqdn_prefix", "only used by circus's statsd"},
};
const std::map<std::string, std::string> kIgnoredWatcherOptions = {
    {"virtualenv", "Python virtualenvs are not loaded; set PATH in the watcher's env"},
    {"virtualenv_py_ver", "Python virtualenvs are not loaded"},
    {"use_papa", "papa is not supported"},
    {"copy_path", "it passes Python's sys.path as PYTHONPATH, which trapeze does not have"},
};

/// An absolute, normalized directory; "" is the current directory.
std::string absolute_dir(const fs::path& dir) {
  std::string out = fs::absolute(dir.empty() ? fs::path(".") : dir).lexically_normal().string();
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string section_label(std::string_view name) {
  return fmt::format("[{}]", name);
}

/// A raw entry whose string value was interpolated for the section it is read in.
RawEntry interpolated(const RawEntry& e, const Env& env, Values& values) {
  RawEntry out = e;
  if (auto* s = std::get_if<std::string>(&e.value)) {
    std::vector<std::string> unset;
    out.value = interpolate(*s, env, &unset);
    for (const auto& name : unset)
      values.warning(e.where, e.key, fmt::format("$(circus.env.{}) is not set; left as written", name));
  }
  return out;
}

class Builder {
 public:
  Builder(const RawDoc& doc, const std::string& path, const LoadOptions& options,
          std::vector<Diagnostic>& out)
      : doc_(doc), path_(path), options_(options), values_(out, doc.format == Format::toml) {}

  Config run() {
    config_.path = path_;
    config_.files = doc_.files;
    read_env();
    for (const auto& section : doc_.sections) {
      if (section.entries.empty()) {
        if (section.name.starts_with("watcher:"))
          values_.warning(section.where, section_label(section.name),
                          "an empty section is ignored (as circus does)");
        continue;
      }
      route(section);
    }
    resolve_plugin_dirs();
    cross_check();
    // Sorted by name, as circus sorts them: the file's order carries no meaning (priority and
    // depends_on order starts), and TOML tables have no order anyway.
    auto by_name = [](const auto& a, const auto& b) { return a.name < b.name; };
    std::stable_sort(config_.watchers.begin(), config_.watchers.end(), by_name);
    std::stable_sort(config_.sockets.begin(), config_.sockets.end(), by_name);
    std::stable_sort(config_.plugins.begin(), config_.plugins.end(), by_name);
    return std::move(config_);
  }

 private:
  // --- sections -------------------------------------------------------------------------

  void route(const RawSection& s) {
    const std::string& n = s.name;
    if (n == "circus" || n == "trapeze") {
      if (arbiter_section_ != nullptr && arbiter_section_->name != n) {
        values_.error(s.where, section_label(n),
                      fmt::format("both [circus] and [trapeze] are given (the other at {}:{}); use one",
                                  arbiter_section_->where.file, arbiter_section_->where.line));
        return;
      }
      arbiter_section_ = &s;
      read_arbiter(s);
    } else if (n == "env" || n.starts_with("env:")) {
      // Read by read_env() and watcher_env().
    } else if (n.starts_with("watcher:")) {
      read_watcher(s, n.substr(8));
    } else if (n.starts_with("socket:")) {
      read_socket(s, lower(n.substr(7)));
    } else if (n.starts_with("plugin:")) {
      read_plugin(s, n.substr(7));
    } else if (n == "juju") {
      read_juju(s);
    } else {
      auto colon = n.find(':');
      std::string head = n.substr(0, colon);
      std::string guess = closest(head, {"circus", "trapeze", "env", "watcher", "socket", "plugin", "juju"});
      std::string hint = guess.empty() ? ""
                                       : fmt::format("; did you mean [{}{}]?", guess,
                                                     colon == std::string::npos ? "" : n.substr(colon));
      values_.error(s.where, section_label(n),
                    fmt::format("unknown section{}{}", hint,
                                guess.empty() ? " (sections are circus, env, env:NAMES, watcher:NAME, "
                                                "socket:NAME, plugin:NAME, juju)"
                                              : ""));
    }
  }

  void unknown(const RawEntry& e, std::string_view what, const std::vector<std::string>& known) {
    std::string guess = closest(e.key, known);
    values_.error(e.where, e.key,
                  fmt::format("unknown option for {}{}", what,
                              guess.empty() ? "" : fmt::format("; did you mean '{}'?", guess)));
  }

  // --- [env] and [env:PATTERNS] --------------------------------------------------------

  void read_env() {
    global_env_ = options_.environ;
    if (const RawSection* s = doc_.find("env")) {
      for (const auto& e : s->entries) {
        auto item = interpolated(e, options_.environ, values_);
        if (auto v = values_.string(item)) {
          local_env_[e.key] = *v;
          global_env_[e.key] = *v;
        }
      }
    }
  }

  /// circus: [env], then every [env:PATTERNS] section whose pattern matches the name, in file
  /// order, then the watcher's own env options. Values expand $NAME from the arbiter's environment.
  Env watcher_env(const std::string& name) {
    Env env = local_env_;
    for (const auto& s : doc_.sections) {
      if (!s.name.starts_with("env:")) continue;
      for (const auto& pattern : split(s.name.substr(4), ',')) {
        if (::fnmatch(pattern.c_str(), name.c_str(), 0) != 0) continue;
        for (const auto& e : s.entries)
          if (auto v = values_.string(e)) env[e.key] = expand(*v, e);
      }
    }
    for (const auto& [key, value] : own_env_[name]) env[key] = value;
    return env;
  }

  std::string expand(const std::string& value, const RawEntry& e) {
    std::vector<std::string> unset;
    // Not trimmed: a TOML string is exactly what it says, and the INI reader trims its values.
    std::string out = expand_env_value(value, options_.environ, &unset, doc_.format == Format::toml);
    for (const auto& name : unset)
      values_.warning(
          e.where, e.key,
          fmt::format("${} is not set in the arbiter's environment; it expands to nothing", name));
    return out;
  }

  // --- [circus] ---------------------------------------------------------------------------

  void read_arbiter(const RawSection& s) {
    static const std::vector<std::string> known = {
        "endpoint",     "pubsub_endpoint", "endpoint_owner", "pidfile", "loglevel",    "logoutput", "umask",
        "warmup_delay", "priority_order",  "plugin_dirs",    "include", "include_dir", "debug",
        "curve_keypair", "curve_clients", "pubsub_hwm"};
    auto& a = config_.arbiter;
    for (const auto& raw : s.entries) {
      RawEntry e = interpolated(raw, global_env_, values_);
      const std::string& k = e.key;
      if (auto ignored = kIgnoredArbiterOptions.find(k); ignored != kIgnoredArbiterOptions.end()) {
        values_.warning(e.where, k, "ignored: " + ignored->second);
      } else if (k == "endpoint" || k == "pubsub_endpoint" || k == "endpoint_owner" || k == "pidfile" ||
                 k == "logoutput") {
        if (auto v = values_.string(e)) {
          std::string& field = k == "endpoint"          ? a.endpoint
                               : k == "pubsub_endpoint" ? a.pubsub_endpoint
                               : k == "endpoint_owner"  ? a.endpoint_owner
                               : k == "pidfile"         ? a.pidfile
                                                        : a.logoutput;
          field = *v;
        }
      } else if (k == "curve_keypair" || k == "curve_clients") {
        if (auto v = values_.string(e)) {
          fs::path p(*v);
          if (p.is_relative()) p = fs::path(path_).parent_path() / p;
          (k == "curve_keypair" ? a.curve_keypair : a.curve_clients) = p.lexically_normal().string();
        }
      } else if (k == "loglevel") {
        static const std::vector<std::string> levels = {"debug", "info", "warning", "error", "critical"};
        if (auto i = values_.choice(e, levels)) a.loglevel = levels[*i];
      } else if (k == "debug") {
        if (auto v = values_.boolean(e); v && *v) a.loglevel = "debug";
      } else if (k == "umask") {
        a.umask = values_.umask(e);
      } else if (k == "warmup_delay") {
        if (auto d = values_.duration(e)) a.warmup_delay = *d;
      } else if (k == "pubsub_hwm") {
        if (auto n = values_.integer(e, 1, 100000000)) a.pubsub_hwm = static_cast<int>(*n);
      } else if (k == "priority_order") {
        if (auto i = values_.choice(e, {"ascending", "descending"}))
          a.priority_order = *i == 0 ? PriorityOrder::ascending : PriorityOrder::descending;
      } else if (k == "plugin_dirs") {
        if (auto v = values_.list(e)) {
          for (auto d : *v) {
            fs::path p(d);
            if (p.is_relative()) p = fs::path(path_).parent_path() / p;
            a.plugin_dirs.push_back(absolute_dir(p));
          }
        }
      } else if (k == "include" || k == "include_dir") {
        // INI: followed by read_ini(). A TOML config is a single file.
        if (doc_.format == Format::toml)
          values_.error(e.where, k, "include and include_dir are INI options; a TOML config is one file");
      } else {
        unknown(e, "the arbiter", known);
      }
    }
  }

  void resolve_plugin_dirs() {
    auto& dirs = config_.arbiter.plugin_dirs;
    if (dirs.empty()) {
      // Absolute, so that a daemon that changes directory still finds them.
      dirs.push_back(absolute_dir(fs::path(path_).parent_path()));
    }
    for (const auto& d : options_.default_plugin_dirs)
      if (std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
  }

  // --- [watcher:NAME] ---------------------------------------------------------------------

  void read_watcher(const RawSection& s, const std::string& name) {
    WatcherConfig w;
    w.name = name;
    w.where = s.where;
    check_name(s, name, "watcher");
    check_bodies_.clear();
    bad_check_names_.clear();
    kindless_checks_.clear();
    // Interpolation sees the watcher's environment, which needs copy_env and the env options
    // first (circus reads them before expanding, too).
    for (const auto& e : s.entries) {
      if (e.key == "copy_env") w.copy_env = values_.boolean(e).value_or(false);
      if (e.key == "env") read_env_option(e, name);
      if (e.key.starts_with("env.")) {
        if (auto v = values_.string(e)) own_env_[name][e.key.substr(4)] = expand(*v, e);
      }
    }
    // The model keeps the config's own variables; with copy_env the spawner puts them over the
    // arbiter's environment. Interpolation sees both, as in circus.
    w.env = watcher_env(name);
    Env env = global_env_;
    for (const auto& [k, v] : w.env) env[k] = v;

    for (const auto& raw : s.entries) {
      if (raw.key == "copy_env" || raw.key == "env" || raw.key.starts_with("env.")) continue;
      RawEntry e = interpolated(raw, env, values_);
      read_watcher_option(e, w);
    }
    finish_watcher(w, s);
    config_.watchers.push_back(std::move(w));
  }

  void read_env_option(const RawEntry& e, const std::string& watcher) {
    auto text = values_.string(e);
    if (!text) return;
    for (const auto& pair : split(*text, ',')) {
      auto eq = pair.find('=');
      if (eq == std::string::npos || trim(pair.substr(0, eq)).empty()) {
        values_.error(e.where, e.key,
                      fmt::format("expected KEY=VALUE pairs separated by commas, got {}", quote(pair)));
        return;
      }
      own_env_[watcher][std::string(trim(pair.substr(0, eq)))] = expand(std::string(trim(pair.substr(eq + 1))), e);
    }
  }

  void check_name(const RawSection& s, const std::string& name, std::string_view what) {
    auto bad = std::find_if(name.begin(), name.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || c == 0x7f || is_space(c) ||
             std::strchr("*?[],/", c) != nullptr;
    });
    if (name.empty())
      values_.error(s.where, section_label(s.name), fmt::format("a {} needs a name: [{}:NAME]", what, what));
    else if (!valid_utf8(name))
      values_.error(s.where, section_label(s.name), fmt::format("the {} name is not valid UTF-8", what));
    else if (bad != name.end())
      values_.error(
          s.where, section_label(s.name),
          fmt::format("the {} name {} contains {}: names may not contain blanks, control characters or "
                      "any of * ? [ ] , /",
                      what, quote(name), quote(std::string(1, *bad))));
  }

  void read_watcher_option(const RawEntry& e, WatcherConfig& w) {
    static const std::vector<std::string> known = {"cmd",
                                                   "args",
                                                   "executable",
                                                   "shell",
                                                   "shell_args",
                                                   "working_dir",
                                                   "uid",
                                                   "gid",
                                                   "umask",
                                                   "copy_env",
                                                   "copy_path",
                                                   "env",
                                                   "numprocesses",
                                                   "warmup_delay",
                                                   "autostart",
                                                   "priority",
                                                   "singleton",
                                                   "respawn",
                                                   "max_retry",
                                                   "min_uptime",
                                                   "check_flapping",
                                                   "graceful_timeout",
                                                   "stop_signal",
                                                   "stop_children",
                                                   "send_hup",
                                                   "max_age",
                                                   "max_age_variance",
                                                   "close_child_stdin",
                                                   "close_child_stdout",
                                                   "close_child_stderr",
                                                   "stdin_socket",
                                                   "use_sockets",
                                                   "on_demand",
                                                   "depends_on",
                                                   "rlimit_nofile",
                                                   "stdout_stream.class",
                                                   "stderr_stream.class",
                                                   "hooks.before_start",
                                                   "ready.tcp",
                                                   "check.NAME.tcp",
                                                   "on_check_failure",
                                                   "flapping.attempts",
                                                   "juju.on_ready"};
    const std::string& k = e.key;
    auto str = [&](std::string& field) {
      if (auto v = values_.string(e)) field = *v;
    };
    auto flag = [&](bool& field) {
      if (auto v = values_.boolean(e)) field = *v;
    };
    auto dur = [&](Duration& field) {
      if (auto v = values_.duration(e)) field = *v;
    };

    if (auto ignored = kIgnoredWatcherOptions.find(k); ignored != kIgnoredWatcherOptions.end()) {
      values_.warning(e.where, k, "ignored: " + ignored->second);
      if (k == "copy_path") flag(w.copy_path);
    } else if (k == "cmd") {
      str(w.cmd);
    } else if (k == "args") {
      str(w.args);
    } else if (k == "executable") {
      str(w.executable);
    } else if (k == "shell") {
      flag(w.shell);
    } else if (k == "shell_args") {
      str(w.shell_args);
    } else if (k == "working_dir") {
      str(w.working_dir);
    } else if (k == "uid" || k == "gid") {
      std::optional<std::string> v;
      if (auto* i = std::get_if<std::int64_t>(&e.value))
        v = std::to_string(*i);
      else
        v = values_.string(e);
      if (v && trim(*v).empty())
        values_.error(e.where, k, "must name a user or group, or be a number");
      else if (v)
        (k == "uid" ? w.uid : w.gid) = std::string(trim(*v));
    } else if (k == "umask") {
      w.umask = values_.umask(e);
    } else if (k == "numprocesses") {
      if (auto v = values_.integer(e, 0, 100000)) w.numprocesses = static_cast<int>(*v);
    } else if (k == "warmup_delay") {
      dur(w.warmup_delay);
    } else if (k == "autostart") {
      flag(w.autostart);
    } else if (k == "priority") {
      if (auto v = values_.integer(e, -1000000, 1000000)) w.priority = static_cast<int>(*v);
    } else if (k == "singleton") {
      flag(w.singleton);
    } else if (k == "respawn") {
      flag(w.respawn);
    } else if (k == "max_retry") {
      if (auto v = values_.integer(e, -1, 1000000)) w.max_retry = static_cast<int>(*v);
    } else if (k == "min_uptime") {
      dur(w.min_uptime);
    } else if (k == "check_flapping") {
      flag(w.flapping.enabled);
    } else if (k == "graceful_timeout") {
      dur(w.graceful_timeout);
    } else if (k == "stop_signal") {
      if (auto v = values_.signal(e)) w.stop_signal = *v;
    } else if (k == "stop_children") {
      flag(w.stop_children);
    } else if (k == "send_hup") {
      flag(w.send_hup);
    } else if (k == "max_age") {
      dur(w.max_age);
    } else if (k == "max_age_variance") {
      dur(w.max_age_variance);
    } else if (k == "close_child_stdin") {
      flag(w.close_child_stdin);
    } else if (k == "close_child_stdout") {
      flag(w.close_child_stdout);
    } else if (k == "close_child_stderr") {
      flag(w.close_child_stderr);
    } else if (k == "stdin_socket") {
      str(w.stdin_socket);
    } else if (k == "use_sockets") {
      flag(w.use_sockets);
    } else if (k == "on_demand") {
      flag(w.on_demand);
    } else if (k == "depends_on") {
      if (auto v = values_.list(e)) w.depends_on = *v;
    } else if (k.starts_with("rlimit_")) {
      read_rlimit(e, w);
    } else if (k.starts_with("stdout_stream.") || k.starts_with("stderr_stream.")) {
      read_stream_option(e, k.starts_with("stdout") ? w.stdout_stream : w.stderr_stream);
    } else if (k.starts_with("hooks.")) {
      read_hook_option(e, w);
    } else if (k.starts_with("ready.")) {
      read_ready_option(e, w);
    } else if (k == "check" || k == "checks" || k.starts_with("check.") || k.starts_with("checks.")) {
      read_check_option(e, w);
    } else if (k == "on_check_failure") {
      if (auto i = values_.choice(e, {"ignore", "restart"}))
        w.on_check_failure = *i == 0 ? OnCheckFailure::ignore : OnCheckFailure::restart;
    } else if (k.starts_with("flapping.")) {
      read_flapping_option(e, w.flapping);
    } else if (k.starts_with("juju.")) {
      read_juju_option(e, w.juju);
    } else {
      unknown(e, "a watcher", known);
    }
  }

  void read_rlimit(const RawEntry& e, WatcherConfig& w) {
    std::string name = lower(e.key.substr(7));
    if (std::find(kRlimits.begin(), kRlimits.end(), name) == kRlimits.end()) {
      std::string guess = closest(name, kRlimits);
      values_.error(e.where, e.key,
                    fmt::format("unknown resource limit {}{}", quote(name),
                                guess.empty() ? "" : fmt::format("; did you mean 'rlimit_{}'?", guess)));
      return;
    }
    // circus: an empty value is RLIM_INFINITY.
    if (auto* s = std::get_if<std::string>(&e.value)) {
      std::string v = lower(trim(*s));
      if (v.empty() || v == "infinity" || v == "unlimited") {
        w.rlimits[name] = std::nullopt;
        return;
      }
    }
    if (auto v = values_.integer(e, 0, std::numeric_limits<long long>::max()))
      w.rlimits[name] = static_cast<std::uint64_t>(*v);
  }

  void read_stream_option(const RawEntry& e, StreamConfig& stream) {
    static const std::vector<std::string> known = {"class",           "filename",    "max_bytes",
                                                   "backup_count",    "time_format", "rotate_when",
                                                   "rotate_interval", "utc",         "color"};
    std::string opt = e.key.substr(e.key.find('.') + 1);
    if (opt == "class") {
      auto v = values_.string(e);
      if (!v) return;
      std::string cls(trim(*v));
      if (cls.starts_with("circus.stream.")) cls.erase(0, 14);
      static const std::map<std::string, StreamKind> classes = {
          {"FileStream", StreamKind::file},
          {"WatchedFileStream", StreamKind::watched_file},
          {"TimedRotatingFileStream", StreamKind::timed_rotating_file},
          {"StdoutStream", StreamKind::stdout},
          {"FancyStdoutStream", StreamKind::stdout},
          {"NullStream", StreamKind::null},
          {"QueueStream", StreamKind::null},
      };
      if (auto it = classes.find(cls); it != classes.end()) {
        stream.kind = it->second;
        if (cls == "QueueStream")
          values_.warning(e.where, e.key,
                          "QueueStream is an in-memory Python queue; the output is discarded");
      } else if (lower(cls) == "null" || lower(cls) == "none") {
        stream.kind = StreamKind::null;
      } else if (cls.find('.') != std::string::npos) {
        values_.warning(
            e.where, e.key,
            fmt::format("{} is a Python class trapeze cannot load; the output is discarded", quote(cls)));
        stream.kind = StreamKind::null;
      } else {
        std::vector<std::string> names;
        for (const auto& [n, kind] : classes) names.push_back(n);
        std::string guess = closest(cls, names);
        values_.error(e.where, e.key,
                      fmt::format("unknown stream class {}{}", quote(cls),
                                  guess.empty() ? " (FileStream, WatchedFileStream, TimedRotatingFileStream, "
                                                  "StdoutStream, FancyStdoutStream or NullStream)"
                                                : fmt::format("; did you mean '{}'?", guess)));
      }
    } else if (opt == "filename") {
      if (auto v = values_.string(e)) stream.filename = *v;
    } else if (opt == "max_bytes") {
      if (auto v = values_.integer(e, 0, std::numeric_limits<long long>::max()))
        stream.max_bytes = static_cast<std::uint64_t>(*v);
    } else if (opt == "backup_count") {
      if (auto v = values_.integer(e, 0, 100000)) stream.backup_count = static_cast<int>(*v);
    } else if (opt == "time_format") {
      if (auto v = values_.string(e)) stream.time_format = *v;
    } else if (opt == "rotate_when") {
      auto v = values_.string(e);
      if (!v) return;
      std::string when = lower(trim(*v));
      bool ok = when == "s" || when == "m" || when == "h" || when == "d" || when == "midnight" ||
                (when.size() == 2 && when[0] == 'w' && when[1] >= '0' && when[1] <= '6');
      if (!ok)
        values_.error(e.where, e.key,
                      fmt::format("expected S, M, H, D, W0 to W6 or midnight, got {}", quote(*v)));
      else
        stream.rotate_when = when == "midnight"
                                 ? when
                                 : std::string(1, static_cast<char>(std::toupper(when[0]))) + when.substr(1);
    } else if (opt == "rotate_interval") {
      if (auto v = values_.integer(e, 1, 1000000)) stream.rotate_interval = static_cast<int>(*v);
    } else if (opt == "utc") {
      if (auto v = values_.boolean(e)) stream.utc = *v;
    } else if (opt == "color") {
      if (auto v = values_.string(e)) stream.color = *v;
    } else {
      std::string guess = closest(opt, known);
      values_.error(e.where, e.key,
                    fmt::format("unknown stream option{}",
                                guess.empty() ? ""
                                              : fmt::format("; did you mean '{}.{}'?",
                                                            e.key.substr(0, e.key.find('.')), guess)));
    }
  }

  void read_hook_option(const RawEntry& e, WatcherConfig& w) {
    // hooks.NAME = SPEC[, ignore_failure] | hooks.NAME.spec | .ignore_failure | .isolate | .timeout
    // | .options.KEY
    std::string rest = e.key.substr(6);
    std::string point = rest.substr(0, rest.find('.'));
    std::string sub = rest.size() > point.size() ? rest.substr(point.size() + 1) : "";
    if (point == "extended_stats") {
      values_.warning(e.where, e.key, "ignored: the extended_stats hook is not supported");
      return;
    }
    if (std::find(kHookPoints.begin(), kHookPoints.end(), point) == kHookPoints.end()) {
      std::string guess = closest(point, kHookPoints);
      values_.error(
          e.where, e.key,
          fmt::format("unknown hook {}{}", quote(point),
                      guess.empty() ? " (before_start, after_start, before_spawn, after_spawn, before_stop, "
                                      "after_stop, before_signal, after_signal, before_reap, after_reap)"
                                    : fmt::format("; did you mean 'hooks.{}'?", guess)));
      return;
    }
    HookConfig& h = w.hooks[point];
    if (h.where.line == 0) h.where = e.where;
    if (sub.empty() || sub == "spec") {
      auto v = values_.string(e);
      if (!v) return;
      auto parts = split(*v, ',');
      if (parts.size() > 2 || parts[0].empty()) {
        values_.error(e.where, e.key,
                      fmt::format("expected 'library.so:function' or 'package.module.function', "
                                  "optionally followed by ', true', got {}",
                                  quote(*v)));
        return;
      }
      h.spec = parts[0];
      h.where = e.where;
      if (parts.size() == 2) {
        RawEntry flag{e.key, parts[1], e.where};
        if (auto b = values_.boolean(flag)) h.ignore_failure = *b;
      }
    } else if (sub == "ignore_failure") {
      if (auto b = values_.boolean(e)) h.ignore_failure = *b;
    } else if (sub == "isolate") {
      if (auto b = values_.boolean(e)) h.isolate = *b;
    } else if (sub == "timeout") {
      if (auto d = values_.duration(e)) {
        if (d->count() == 0)
          values_.error(e.where, e.key, "must be more than 0");
        else
          h.timeout = *d;
      }
    } else if (sub.starts_with("options.") && sub.size() > 8) {
      if (auto* s = std::get_if<std::string>(&e.value))
        h.options[sub.substr(8)] = *s;
      else if (!std::holds_alternative<std::vector<std::string>>(e.value))
        h.options[sub.substr(8)] = describe(e.value);
      else
        values_.error(e.where, e.key, "expected a string, number or boolean, got an array");
    } else {
      std::string guess = closest(sub, {"spec", "ignore_failure", "isolate", "timeout", "options"});
      values_.error(e.where, e.key,
                    fmt::format("unknown hook setting {}{}", quote(sub),
                                guess.empty() ? " (spec, ignore_failure, isolate, timeout, options.KEY)"
                                              : fmt::format("; did you mean 'hooks.{}.{}'?", point, guess)));
    }
  }

  void read_ready_option(const RawEntry& e, WatcherConfig& w) {
    static const std::vector<std::string> kinds = {"tcp", "http", "exec", "log", "notify", "notification_fd"};
    static const std::vector<std::string> known = {
        "tcp",  "http",     "exec",    "log",          "notify", "notification_fd",
        "body", "interval", "timeout", "start_timeout"};
    std::string opt = e.key.substr(6);
    ReadyConfig& r = w.ready;
    if (auto it = std::find(kinds.begin(), kinds.end(), opt); it != kinds.end()) {
      if (r.kind != ReadyKind::none) {
        values_.error(
            e.where, e.key,
            fmt::format("a watcher has one readiness check; ready.{} is already given", to_string(r.kind)));
        return;
      }
      auto kind = static_cast<ReadyKind>(1 + (it - kinds.begin()));
      if (kind == ReadyKind::notify) {
        auto b = values_.boolean(e);
        if (b && *b) r.kind = kind;
        return;
      }
      if (kind == ReadyKind::notification_fd) {
        if (auto fd = values_.integer(e, 3, 1024)) {
          r.kind = kind;
          r.target = std::to_string(*fd);
        }
        return;
      }
      auto v = values_.string(e);
      if (!v) return;
      std::string target(trim(*v));
      if (target.empty()) {
        values_.error(e.where, e.key, "must not be empty");
        return;
      }
      if (kind == ReadyKind::tcp && !valid_tcp_target(e, target)) return;
      if (kind == ReadyKind::http && !valid_http_target(e, target)) return;
      if (kind == ReadyKind::log) {
        try {
          std::regex check(target, std::regex::ECMAScript);
        } catch (const std::regex_error& err) {
          values_.error(e.where, e.key,
                        fmt::format("invalid regular expression {}: {}", quote(target), err.what()));
          return;
        }
      }
      r.kind = kind;
      r.target = target;
    } else if (opt == "body") {
      if (auto v = values_.string(e)) r.http_body = *v;
    } else if (opt == "interval" || opt == "timeout" || opt == "start_timeout") {
      auto d = values_.duration(e);
      if (!d) return;
      if (d->count() == 0) {
        values_.error(e.where, e.key, "must be more than 0");
        return;
      }
      (opt == "interval" ? r.interval : opt == "timeout" ? r.timeout : r.start_timeout) = *d;
    } else {
      std::string guess = closest(opt, known);
      values_.error(e.where, e.key,
                    fmt::format("unknown readiness option{}",
                                guess.empty() ? "" : fmt::format("; did you mean 'ready.{}'?", guess)));
    }
  }

  /// A tcp probe's target (ready.tcp, check.NAME.tcp): host:port. Records an error when it is not.
  bool valid_tcp_target(const RawEntry& e, const std::string& target) {
    auto colon = target.rfind(':');
    auto port = colon == std::string::npos ? std::string() : target.substr(colon + 1);
    bool port_ok = !port.empty() && port.size() <= 5 &&
                   port.find_first_not_of("0123456789") == std::string::npos && std::stoi(port) >= 1 &&
                   std::stoi(port) <= 65535;
    if (colon == std::string::npos || colon == 0 || !port_ok) {
      values_.error(e.where, e.key,
                    fmt::format("expected host:port with a port from 1 to 65535, got {}", quote(target)));
      return false;
    }
    return true;
  }

  /// An http probe's target (ready.http, check.NAME.http): an http:// URL.
  bool valid_http_target(const RawEntry& e, const std::string& target) {
    if (!target.starts_with("http://")) {
      values_.error(e.where, e.key, fmt::format("expected an http:// URL, got {}", quote(target)));
      return false;
    }
    return true;
  }

  /// check.NAME.OPTION: a liveness check (Pebble's). TOML's [watchers.W.checks.NAME] tables arrive
  /// as checks.NAME.OPTION; either spelling is accepted, and messages use the one written.
  void read_check_option(const RawEntry& e, WatcherConfig& w) {
    static const std::vector<std::string> known = {"tcp",    "http",    "body",     "exec",
                                                   "period", "timeout", "threshold"};
    const std::string prefix = e.key.substr(0, e.key.find('.'));
    const std::string rest = e.key.size() > prefix.size() ? e.key.substr(prefix.size() + 1) : "";
    const auto dot = rest.find('.');
    const std::string name = rest.substr(0, dot);
    const std::string opt = dot == std::string::npos ? "" : rest.substr(dot + 1);
    if (name.empty() || opt.empty()) {
      values_.error(
          e.where, e.key,
          doc_.format == Format::toml
              ? fmt::format("expected a table [watchers.{}.checks.NAME] with tcp, http or exec", w.name)
              : fmt::format("expected {}.NAME.OPTION, such as {}.alive.tcp = localhost:8080", prefix,
                            prefix));
      return;
    }
    if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos) {
      if (bad_check_names_.insert(name).second)
        values_.error(
            e.where, e.key,
            fmt::format("a check name uses lower-case letters, digits, '-' and '_', got {}", quote(name)));
      return;
    }
    auto it =
        std::find_if(w.checks.begin(), w.checks.end(), [&](const CheckConfig& c) { return c.name == name; });
    if (it == w.checks.end()) {
      CheckConfig fresh;
      fresh.name = name;
      fresh.where = e.where;
      w.checks.push_back(std::move(fresh));
      it = std::prev(w.checks.end());
    }
    CheckConfig& c = *it;

    if (opt == "tcp" || opt == "http" || opt == "exec") {
      if (c.kind != ReadyKind::none) {
        values_.error(e.where, e.key,
                      fmt::format("check {} has one kind; {}.{}.{} is already given", name, prefix, name,
                                  to_string(c.kind)));
        return;
      }
      // Set before the target is checked, so that a bad target is not also "no kind".
      c.kind = opt == "tcp" ? ReadyKind::tcp : opt == "http" ? ReadyKind::http : ReadyKind::exec;
      auto v = values_.string(e);
      if (!v) return;
      std::string target(trim(*v));
      if (target.empty()) {
        values_.error(e.where, e.key, "must not be empty");
        return;
      }
      if (c.kind == ReadyKind::tcp && !valid_tcp_target(e, target)) return;
      if (c.kind == ReadyKind::http && !valid_http_target(e, target)) return;
      c.target = target;
    } else if (opt == "log" || opt == "notify" || opt == "notification_fd") {
      kindless_checks_.insert(name);  // reported here; not again as "give one of"
      values_.error(e.where, e.key,
                    "a liveness check is tcp, http or exec (log and notify are readiness only)");
    } else if (opt == "body") {
      check_bodies_.emplace(name, RawEntry{e.key, std::string(), e.where});
      if (auto v = values_.string(e)) c.http_body = *v;
    } else if (opt == "period" || opt == "timeout") {
      auto d = values_.duration(e);
      if (!d) return;
      if (d->count() == 0) {
        values_.error(e.where, e.key, "must be more than 0");
        return;
      }
      (opt == "period" ? c.period : c.timeout) = *d;
    } else if (opt == "threshold") {
      if (auto v = values_.integer(e, 1, 1000000)) c.threshold = static_cast<int>(*v);
    } else {
      // ready.* calls it interval; a check's is its period.
      std::string guess = opt == "interval" ? "period" : closest(opt, known);
      values_.error(
          e.where, e.key,
          fmt::format("unknown check option{}",
                      guess.empty() ? " (tcp, http, body, exec, period, timeout, threshold)"
                                    : fmt::format("; did you mean '{}.{}.{}'?", prefix, name, guess)));
    }
  }

  /// After all of a watcher's options: each check has a kind, a body only with http; sorted by name.
  void finish_checks(WatcherConfig& w, const RawSection& s) {
    for (const auto& c : w.checks) {
      if (c.kind == ReadyKind::none && !kindless_checks_.contains(c.name))
        values_.error(c.where, section_label(s.name),
                      fmt::format("check {}: give one of tcp, http, exec", c.name));
      auto body = check_bodies_.find(c.name);
      if (body != check_bodies_.end() && c.kind != ReadyKind::none && c.kind != ReadyKind::http)
        values_.error(
            body->second.where, body->second.key,
            fmt::format("only an http check has a body; check {} is a {} check", c.name, to_string(c.kind)));
      if (c.kind != ReadyKind::none && c.timeout >= c.period)
        values_.warning(
            c.where, section_label(s.name),
            fmt::format("check {}: timeout {} is not less than period {}, so a probe may still run "
                        "when the next one is due",
                        c.name, format_duration(c.timeout), format_duration(c.period)));
    }
    std::stable_sort(w.checks.begin(), w.checks.end(),
                     [](const CheckConfig& a, const CheckConfig& b) { return a.name < b.name; });
    if (w.on_check_failure == OnCheckFailure::restart && w.checks.empty()) {
      const RawEntry* e = s.find("on_check_failure");
      values_.warning(e != nullptr ? e->where : s.where, "on_check_failure", "the watcher has no checks");
    }
  }

  void read_flapping_option(const RawEntry& e, FlappingConfig& f) {
    std::string opt = e.key.substr(9);
    if (opt == "attempts") {
      if (auto v = values_.integer(e, 1, 1000000)) f.attempts = static_cast<int>(*v);
    } else if (opt == "window" || opt == "retry_in") {
      if (auto d = values_.duration(e)) (opt == "window" ? f.window : f.retry_in) = *d;
    } else if (opt == "max_retry") {
      if (auto v = values_.integer(e, -1, 1000000)) f.max_retry = static_cast<int>(*v);
    } else {
      std::string guess = closest(opt, {"attempts", "window", "retry_in", "max_retry"});
      values_.error(e.where, e.key,
                    fmt::format("unknown flapping option{}",
                                guess.empty() ? " (attempts, window, retry_in, max_retry)"
                                              : fmt::format("; did you mean 'flapping.{}'?", guess)));
    }
  }

  void read_juju_option(const RawEntry& e, WatcherJujuConfig& j) {
    static const std::vector<std::string> known = {"on_ready", "on_check_failed", "on_check_recovered",
                                                   "on_exit", "on_notice"};
    std::string opt = e.key.substr(5);
    std::optional<std::string>* field = opt == "on_ready"             ? &j.on_ready
                                        : opt == "on_check_failed"    ? &j.on_check_failed
                                        : opt == "on_check_recovered" ? &j.on_check_recovered
                                        : opt == "on_exit"            ? &j.on_exit
                                        : opt == "on_notice"          ? &j.on_notice
                                                                      : nullptr;
    if (field == nullptr) {
      std::string guess = closest(opt, known);
      values_.error(e.where, e.key,
                    fmt::format("unknown juju option{}",
                                guess.empty() ? "" : fmt::format("; did you mean 'juju.{}'?", guess)));
      return;
    }
    // false disables the event; any other text names it.
    if (auto* b = std::get_if<bool>(&e.value); b && !*b) {
      *field = "";
      return;
    }
    auto v = values_.string(e);
    if (!v) return;
    std::string name(trim(*v));
    if (lower(name) == "false") {
      *field = "";
    } else if (name.empty() ||
               name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos) {
      values_.error(e.where, e.key,
                    fmt::format("a charm event name uses lower-case letters, digits, '-' and '_', got {}",
                                quote(name)));
    } else {
      *field = name;
    }
  }

  void finish_watcher(WatcherConfig& w, const RawSection& s) {
    std::string label = section_label(s.name);
    if (w.cmd.empty()) values_.error(s.where, label, "missing cmd: a watcher needs a command to run");
    finish_checks(w, s);
    if (w.singleton && w.numprocesses > 1)
      values_.error(
          s.where, label,
          fmt::format("singleton = true allows one process, but numprocesses = {}", w.numprocesses));
    for (auto* stream : {&w.stdout_stream, &w.stderr_stream}) {
      bool needs_file = stream->kind == StreamKind::file || stream->kind == StreamKind::watched_file ||
                        stream->kind == StreamKind::timed_rotating_file;
      std::string which = stream == &w.stdout_stream ? "stdout_stream" : "stderr_stream";
      if (needs_file && stream->filename.empty())
        values_.error(s.where, which + ".filename", "is required by " + which + ".class");
      if (!needs_file && !stream->filename.empty() && stream->kind != StreamKind::inherit)
        values_.warning(s.where, which + ".filename", "ignored: the stream class writes no file");
      if (stream->kind == StreamKind::inherit && !stream->filename.empty()) {
        stream->kind = StreamKind::file;  // circus: a filename alone means FileStream
      }
    }
    for (auto& [point, hook] : w.hooks)
      if (hook.spec.empty())
        values_.error(hook.where, "hooks." + point,
                      "has settings but no function (hooks." + point + " = SPEC)");
  }

  // --- [socket:NAME], [plugin:NAME], [juju] ------------------------------------------------

  void read_socket(const RawSection& s, const std::string& name) {
    static const std::vector<std::string> known = {"host",    "port",         "path",    "family",
                                                   "type",    "interface",    "backlog", "umask",
                                                   "replace", "so_reuseport", "blocking"};
    SocketConfig sock;
    sock.name = name;
    sock.where = s.where;
    check_name(s, name, "socket");
    for (const auto& raw : s.entries) {
      RawEntry e = interpolated(raw, global_env_, values_);
      const std::string& k = e.key;
      if (k == "host" || k == "path" || k == "interface") {
        if (auto v = values_.string(e))
          (k == "host" ? sock.host : k == "path" ? sock.path : sock.interface) = *v;
      } else if (k == "port") {
        if (auto v = values_.integer(e, 0, 65535)) sock.port = static_cast<int>(*v);
      } else if (k == "family") {
        static const std::vector<std::string> f = {"AF_INET", "AF_INET6", "AF_UNIX"};
        if (auto i = values_.choice(e, f)) sock.family = f[*i];
      } else if (k == "type") {
        static const std::vector<std::string> t = {"SOCK_STREAM", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_RAW",
                                                   "SOCK_RDM"};
        if (auto i = values_.choice(e, t)) sock.type = t[*i];
      } else if (k == "backlog") {
        if (auto v = values_.integer(e, 1, 65535)) sock.backlog = static_cast<int>(*v);
      } else if (k == "umask") {
        sock.umask = values_.umask(e);
      } else if (k == "replace" || k == "so_reuseport" || k == "blocking") {
        if (auto v = values_.boolean(e))
          (k == "replace" ? sock.replace : k == "so_reuseport" ? sock.so_reuseport : sock.blocking) = *v;
      } else {
        unknown(e, "a socket", known);
      }
    }
    if (!sock.path.empty()) sock.family = "AF_UNIX";  // circus: a path forces AF_UNIX
    config_.sockets.push_back(std::move(sock));
  }

  void read_plugin(const RawSection& s, const std::string& name) {
    PluginConfig p;
    p.name = name;
    p.where = s.where;
    for (const auto& raw : s.entries) {
      RawEntry e = interpolated(raw, global_env_, values_);
      auto v = values_.string(e);
      if (!v) continue;
      if (e.key == "use")
        p.use = *v;
      else
        p.options[e.key] = *v;
    }
    if (p.use == "circus.plugins.flapping.Flapping")
      values_.warning(s.where, section_label(s.name),
                      "flapping detection is built into trapeze (flapping.* watcher options); this plugin "
                      "section is ignored");
    else
      values_.warning(
          s.where, section_label(s.name),
          fmt::format("ignored: circus plugins are Python classes, which trapeze does not run (use = {})",
                      p.use.empty() ? "nothing" : p.use));
    config_.plugins.push_back(std::move(p));
  }

  void read_juju(const RawSection& s) {
    static const std::vector<std::string> known = {"unit",       "charm_dir", "model",  "mode",
                                                   "queue_file", "max_retry", "backoff"};
    auto& j = config_.juju;
    j.configured = true;
    for (const auto& raw : s.entries) {
      RawEntry e = interpolated(raw, global_env_, values_);
      const std::string& k = e.key;
      if (k == "unit" || k == "charm_dir" || k == "model" || k == "queue_file") {
        if (auto v = values_.string(e))
          (k == "unit"        ? j.unit
           : k == "charm_dir" ? j.charm_dir
           : k == "model"     ? j.model
                              : j.queue_file) = *v;
      } else if (k == "mode") {
        if (auto i = values_.choice(e, {"exec", "direct"}))
          j.mode = *i == 0 ? JujuMode::exec : JujuMode::direct;
      } else if (k == "max_retry") {
        if (auto v = values_.integer(e, 0, 1000)) j.max_retry = static_cast<int>(*v);
      } else if (k == "backoff") {
        if (auto d = values_.duration(e)) j.backoff = *d;
      } else {
        unknown(e, "[juju]", known);
      }
    }
    auto from_env = [&](std::string& field, const char* var) {
      if (field.empty())
        if (auto it = options_.environ.find(var); it != options_.environ.end()) field = it->second;
    };
    from_env(j.unit, "JUJU_UNIT_NAME");
    from_env(j.charm_dir, "JUJU_CHARM_DIR");
    from_env(j.model, "JUJU_MODEL_NAME");
    if (j.unit.empty())
      values_.error(s.where, "[juju]", "unit is not set and JUJU_UNIT_NAME is not in the environment");
    if (j.charm_dir.empty())
      values_.error(s.where, "[juju]", "charm_dir is not set and JUJU_CHARM_DIR is not in the environment");
  }

  // --- whole-config checks -------------------------------------------------------------------

  void cross_check() {
    std::map<std::string, const WatcherConfig*> by_name;
    std::set<std::string> socket_names;
    for (const auto& s : config_.sockets) socket_names.insert(s.name);

    for (auto& w : config_.watchers) {
      auto [it, fresh] = by_name.emplace(lower(w.name), &w);
      if (!fresh)
        values_.error(
            w.where, section_label("watcher:" + w.name),
            fmt::format("the watcher name clashes with '{}' at {}:{} (names are compared without case)",
                        it->second->name, it->second->where.file, it->second->where.line));
      check_references(w, socket_names);
      if (options_.check_commands) check_command(w);
      for (auto& [point, hook] : w.hooks) {
        if (hook.spec.empty()) continue;
        if (auto problem = resolve_hook(hook, config_.arbiter.plugin_dirs,
                                        fs::path(path_).parent_path().string(), options_.resolve_hooks))
          values_.error(hook.where, "hooks." + point, *problem);
      }
    }
    for (const auto& w : config_.watchers)
      for (const auto& dep : w.depends_on)
        if (!by_name.contains(lower(dep)))
          values_.error(w.where, "depends_on", fmt::format("names no watcher: {}", quote(dep)));
    check_cycles(by_name);
  }

  void check_references(const WatcherConfig& w, const std::set<std::string>& sockets) {
    bool uses_socket = false;
    for (const auto* field : {&w.cmd, &w.args}) {
      for (const auto& ref : find_vars(*field)) {
        if (ref.name.starts_with("sockets.")) {
          uses_socket = true;
          // circus passes an unknown reference on as written; so do we, loudly.
          if (!sockets.contains(ref.name.substr(8)))
            values_.warning(w.where, field == &w.cmd ? "cmd" : "args",
                            fmt::format("{} names no [socket:{}] section; it is passed as written", ref.text,
                                        ref.name.substr(8)));
        } else if (ref.name != "wid" && !ref.name.starts_with("env.")) {
          values_.warning(
              w.where, field == &w.cmd ? "cmd" : "args",
              fmt::format("{} is not a variable trapeze knows ($(circus.wid), $(circus.env.NAME), "
                          "$(circus.sockets.NAME)); it is passed as written",
                          ref.text));
        }
      }
    }
    if (uses_socket && !w.use_sockets)
      values_.warning(
          w.where, "use_sockets",
          "the command names a socket but use_sockets is false, so the child will not inherit it");
    if (!w.stdin_socket.empty() && !sockets.contains(w.stdin_socket))
      values_.error(w.where, "stdin_socket", fmt::format("names no [socket:{}] section", w.stdin_socket));
    if (w.on_demand && (!w.use_sockets || sockets.empty()))
      values_.warning(w.where, "on_demand",
                      "without use_sockets and a [socket:NAME] there is no connection to wait for: it starts "
                      "like any watcher");
  }

  void check_command(const WatcherConfig& w) {
    if (w.cmd.empty() || w.shell) return;
    std::string program =
        w.executable.empty() ? split_ws(w.cmd).empty() ? "" : split_ws(w.cmd)[0] : w.executable;
    if (program.empty() || program.find("$(") != std::string::npos ||
        program.find("((") != std::string::npos || program.find('$') != std::string::npos)
      return;
    if (program.find('/') != std::string::npos) {
      fs::path p(program);
      if (p.is_relative() && !w.working_dir.empty()) p = fs::path(w.working_dir) / p;
      if (::access(p.c_str(), X_OK) != 0)
        values_.warning(w.where, "cmd", fmt::format("{} is not an executable file", quote(program)));
      return;
    }
    std::string path_var;
    if (auto it = w.env.find("PATH"); it != w.env.end())
      path_var = it->second;
    else if (auto pit = options_.environ.find("PATH"); pit != options_.environ.end())
      path_var = pit->second;
    for (const auto& dir : split(path_var, ':')) {
      if (dir.empty()) continue;
      if (::access((fs::path(dir) / program).c_str(), X_OK) == 0) return;
    }
    values_.warning(w.where, "cmd", fmt::format("{} is not found on PATH", quote(program)));
  }

  void check_cycles(const std::map<std::string, const WatcherConfig*>& by_name) {
    enum class Mark { none, visiting, done };
    std::map<std::string, Mark> marks;
    std::vector<std::string> stack;
    std::function<bool(const WatcherConfig&)> visit = [&](const WatcherConfig& w) {
      Mark& m = marks[lower(w.name)];
      if (m == Mark::done) return false;
      if (m == Mark::visiting) {
        auto from = std::find(stack.begin(), stack.end(), w.name);
        std::string cycle;
        for (auto it = from; it != stack.end(); ++it) cycle += *it + " -> ";
        values_.error(w.where, "depends_on", fmt::format("a dependency cycle: {}{}", cycle, w.name));
        return true;
      }
      m = Mark::visiting;
      stack.push_back(w.name);
      for (const auto& dep : w.depends_on)
        if (auto it = by_name.find(lower(dep)); it != by_name.end() && visit(*it->second)) return true;
      stack.pop_back();
      m = Mark::done;
      return false;
    };
    for (const auto& w : config_.watchers)
      if (visit(w)) return;  // one cycle reported is enough
  }

  const RawDoc& doc_;
  const std::string& path_;
  const LoadOptions& options_;
  Values values_;
  Config config_;
  const RawSection* arbiter_section_ = nullptr;
  Env global_env_, local_env_;
  std::map<std::string, Env> own_env_;  // a watcher's own env = / env.KEY options
  // The watcher being read: its checks' body options, and check names already reported.
  std::map<std::string, RawEntry> check_bodies_;
  std::set<std::string> bad_check_names_, kindless_checks_;
};

}  // namespace

Config build(const RawDoc& doc, const std::string& path, const LoadOptions& options,
             std::vector<Diagnostic>& out) {
  return Builder(doc, path, options, out).run();
}

}  // namespace trapeze::conf::detail
