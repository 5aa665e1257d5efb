#include "trapeze/conf/show.hpp"

#include <algorithm>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "values.hpp"

namespace trapeze::conf {
namespace {

using json = nlohmann::ordered_json;

std::string octal(mode_t m) {
  return fmt::format("{:03o}", m);
}

json stream_json(const StreamConfig& s) {
  json j = json::object();
  switch (s.kind) {
    case StreamKind::inherit:
      return j;
    case StreamKind::null:
      j["class"] = "NullStream";
      return j;
    case StreamKind::stdout:
      j["class"] = s.color.empty() ? "StdoutStream" : "FancyStdoutStream";
      if (!s.color.empty()) j["color"] = s.color;
      break;
    case StreamKind::file:
      j["class"] = "FileStream";
      j["max_bytes"] = s.max_bytes;
      j["backup_count"] = s.backup_count;
      break;
    case StreamKind::timed_rotating_file:
      j["class"] = "TimedRotatingFileStream";
      j["backup_count"] = s.backup_count;
      j["rotate_when"] = s.rotate_when;
      j["rotate_interval"] = s.rotate_interval;
      j["utc"] = s.utc;
      break;
    case StreamKind::watched_file:
      j["class"] = "WatchedFileStream";
      break;
  }
  if (!s.filename.empty()) j["filename"] = s.filename;
  if (!s.time_format.empty()) j["time_format"] = s.time_format;
  return j;
}

json watcher_json(const WatcherConfig& w) {
  json j;
  j["cmd"] = w.cmd;
  j["args"] = w.args;
  if (!w.executable.empty()) j["executable"] = w.executable;
  j["shell"] = w.shell;
  if (!w.shell_args.empty()) j["shell_args"] = w.shell_args;
  if (!w.working_dir.empty()) j["working_dir"] = w.working_dir;
  if (w.uid) j["uid"] = *w.uid;
  if (w.gid) j["gid"] = *w.gid;
  if (w.umask) j["umask"] = octal(*w.umask);
  j["copy_env"] = w.copy_env;
  j["numprocesses"] = w.numprocesses;
  j["warmup_delay"] = format_duration(w.warmup_delay);
  j["autostart"] = w.autostart;
  j["priority"] = w.priority;
  j["singleton"] = w.singleton;
  j["respawn"] = w.respawn;
  j["max_retry"] = w.max_retry;
  j["min_uptime"] = format_duration(w.min_uptime);
  j["check_flapping"] = w.flapping.enabled;
  j["graceful_timeout"] = format_duration(w.graceful_timeout);
  j["stop_signal"] = signal_name(w.stop_signal);
  j["stop_children"] = w.stop_children;
  j["send_hup"] = w.send_hup;
  j["max_age"] = format_duration(w.max_age);
  j["max_age_variance"] = format_duration(w.max_age_variance);
  j["close_child_stdin"] = w.close_child_stdin;
  j["close_child_stdout"] = w.close_child_stdout;
  j["close_child_stderr"] = w.close_child_stderr;
  if (!w.stdin_socket.empty()) j["stdin_socket"] = w.stdin_socket;
  j["use_sockets"] = w.use_sockets;
  j["on_demand"] = w.on_demand;
  if (!w.depends_on.empty()) j["depends_on"] = w.depends_on;
  for (const auto& [name, value] : w.rlimits) {
    if (value)
      j["rlimit_" + name] = *value;
    else
      j["rlimit_" + name] = "infinity";
  }
  j["env"] = w.env;
  j["flapping"] = {{"attempts", w.flapping.attempts},
                   {"window", format_duration(w.flapping.window)},
                   {"retry_in", format_duration(w.flapping.retry_in)},
                   {"max_retry", w.flapping.max_retry}};
  if (auto s = stream_json(w.stdout_stream); !s.empty()) j["stdout_stream"] = s;
  if (auto s = stream_json(w.stderr_stream); !s.empty()) j["stderr_stream"] = s;
  if (!w.hooks.empty()) {
    json hooks = json::object();
    for (const auto& [point, h] : w.hooks) {
      json hj = {
          {"spec", h.spec}, {"ignore_failure", h.ignore_failure}, {"timeout", format_duration(h.timeout)}};
      if (h.isolate) hj["isolate"] = true;  // the default is left out
      if (!h.options.empty()) hj["options"] = h.options;
      hooks[point] = hj;
    }
    j["hooks"] = hooks;
  }
  if (w.ready.kind != ReadyKind::none) {
    json r;
    const ReadyConfig& rc = w.ready;
    if (rc.kind == ReadyKind::notify)
      r["notify"] = true;
    else if (rc.kind == ReadyKind::notification_fd)
      r["notification_fd"] = std::stoi(rc.target);
    else
      r[std::string(to_string(rc.kind))] = rc.target;
    if (!rc.http_body.empty()) r["body"] = rc.http_body;
    r["interval"] = format_duration(rc.interval);
    r["timeout"] = format_duration(rc.timeout);
    r["start_timeout"] = format_duration(rc.start_timeout);
    j["ready"] = r;
  }
  if (!w.checks.empty()) {
    json checks = json::object();
    for (const auto& c : w.checks) {
      json cj;
      cj[std::string(to_string(c.kind))] = c.target;
      if (!c.http_body.empty()) cj["body"] = c.http_body;
      cj["period"] = format_duration(c.period);
      cj["timeout"] = format_duration(c.timeout);
      cj["threshold"] = c.threshold;
      checks[c.name] = cj;
    }
    j["checks"] = checks;
  }
  if (w.on_check_failure != OnCheckFailure::ignore) j["on_check_failure"] = to_string(w.on_check_failure);
  json juju = json::object();
  auto event = [&](const char* key, const std::optional<std::string>& v) {
    if (v) juju[key] = v->empty() ? json(false) : json(*v);
  };
  event("on_ready", w.juju.on_ready);
  event("on_check_failed", w.juju.on_check_failed);
  event("on_check_recovered", w.juju.on_check_recovered);
  event("on_exit", w.juju.on_exit);
  event("on_notice", w.juju.on_notice);
  if (!juju.empty()) j["juju"] = juju;
  return j;
}

toml::table to_table(const json& j);
toml::array to_array(const json& j);

/// Hands `v` converted to TOML to `put`, which inserts it into a table or an array.
template <class Put>
void convert(const json& v, Put&& put) {
  switch (v.type()) {
    case json::value_t::object:
      put(to_table(v));
      break;
    case json::value_t::array:
      put(to_array(v));
      break;
    case json::value_t::string:
      put(v.get<std::string>());
      break;
    case json::value_t::boolean:
      put(v.get<bool>());
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      put(v.get<int64_t>());
      break;
    case json::value_t::number_float:
      put(v.get<double>());
      break;
    default:
      break;  // null: nothing in TOML
  }
}

toml::array to_array(const json& j) {
  toml::array a;
  for (const auto& item : j) convert(item, [&](auto&& x) { a.push_back(std::forward<decltype(x)>(x)); });
  return a;
}

toml::table to_table(const json& j) {
  toml::table t;
  // Not a structured binding: clang before 16 cannot capture one in a lambda (fuzz builds).
  for (const auto& item : j.items()) {
    const std::string& key = item.key();
    convert(item.value(), [&](auto&& x) { t.insert(key, std::forward<decltype(x)>(x)); });
  }
  return t;
}

/// A key as TOML writes it: bare when it may be, else a basic string. toml++ 3.3 writes a key
/// holding a single quote (and otherwise bare characters) bare, which TOML, and toml++'s own
/// parser, refuse: a watcher named b'eta made `trapeze check`'s TOML unreadable.
std::string toml_key(std::string_view key) {
  auto bare = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  };
  if (!key.empty() && std::all_of(key.begin(), key.end(), bare)) return std::string(key);
  std::string out = "\"";
  for (char c : key) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  return out + "\"";
}

/// Writes `t` as toml++ lays it out (values, then each subtable under its [dotted.header]),
/// with the keys written by toml_key and the values by toml++.
void write_table(std::ostringstream& out, const toml::table& t, const std::string& path) {
  constexpr auto flags = toml::toml_formatter::default_flags & ~toml::format_flags::indentation;
  for (const auto& [key, node] : t) {
    if (node.is_table()) continue;
    out << toml_key(key.str()) << " = " << toml::toml_formatter(node, flags) << '\n';
  }
  for (const auto& [key, node] : t) {
    if (!node.is_table()) continue;
    std::string sub = (path.empty() ? "" : path + ".") + toml_key(key.str());
    const toml::table& inner = *node.as_table();
    bool shown = inner.empty() || std::any_of(inner.begin(), inner.end(),
                                              [](const auto& kv) { return !kv.second.is_table(); });
    if (shown) out << (out.tellp() > 0 ? "\n[" : "[") << sub << "]\n";
    write_table(out, inner, sub);
  }
}

}  // namespace

std::string format_duration(Duration d) {
  return detail::format_duration(d);
}
std::string signal_name(int signum) {
  return detail::signal_name(signum);
}

json to_json(const WatcherConfig& watcher) {
  return watcher_json(watcher);
}

json to_json(const Config& config) {
  json j;
  const ArbiterConfig& a = config.arbiter;
  json arbiter = {{"endpoint", a.endpoint},
                  {"pubsub_endpoint", a.pubsub_endpoint},
                  {"loglevel", a.loglevel},
                  {"logoutput", a.logoutput},
                  {"warmup_delay", format_duration(a.warmup_delay)},
                  {"priority_order", to_string(a.priority_order)},
                  {"pubsub_hwm", a.pubsub_hwm},
                  {"plugin_dirs", a.plugin_dirs}};
  if (!a.endpoint_owner.empty()) arbiter["endpoint_owner"] = a.endpoint_owner;
  if (!a.curve_keypair.empty()) arbiter["curve_keypair"] = a.curve_keypair;
  if (!a.curve_clients.empty()) arbiter["curve_clients"] = a.curve_clients;
  if (!a.pidfile.empty()) arbiter["pidfile"] = a.pidfile;
  if (a.umask) arbiter["umask"] = octal(*a.umask);
  j["arbiter"] = arbiter;

  json watchers = json::object();
  for (const auto& w : config.watchers) watchers[w.name] = watcher_json(w);
  j["watchers"] = watchers;

  if (!config.sockets.empty()) {
    json sockets = json::object();
    for (const auto& s : config.sockets) {
      json sj = {{"family", s.family},
                 {"type", s.type},
                 {"backlog", s.backlog},
                 {"replace", s.replace},
                 {"so_reuseport", s.so_reuseport},
                 {"blocking", s.blocking}};
      if (s.path.empty()) {
        sj["host"] = s.host;
        sj["port"] = s.port;
      } else {
        sj["path"] = s.path;
      }
      if (!s.interface.empty()) sj["interface"] = s.interface;
      if (s.umask) sj["umask"] = octal(*s.umask);
      sockets[s.name] = sj;
    }
    j["sockets"] = sockets;
  }
  if (config.juju.configured) {
    const JujuConfig& ju = config.juju;
    json juju = {{"unit", ju.unit},
                 {"charm_dir", ju.charm_dir},
                 {"mode", to_string(ju.mode)},
                 {"max_retry", ju.max_retry},
                 {"backoff", format_duration(ju.backoff)}};
    if (!ju.model.empty()) juju["model"] = ju.model;
    if (!ju.queue_file.empty()) juju["queue_file"] = ju.queue_file;
    j["juju"] = juju;
  }
  return j;
}

std::string to_toml(const Config& config) {
  json j = to_json(config);
  // A watcher's env values are final here (an INI [env] section's may keep a literal $NAME);
  // TOML expands $NAME when loading, and reads "$$" as one '$'.
  for (auto& [name, w] : j["watchers"].items())
    for (auto& [key, value] : w["env"].items()) {
      std::string text = value.get<std::string>(), escaped;
      for (char ch : text) escaped += ch == '$' ? std::string("$$") : std::string(1, ch);
      value = escaped;
    }
  std::ostringstream out;
  write_table(out, to_table(j), "");
  return out.str();
}

}  // namespace trapeze::conf
