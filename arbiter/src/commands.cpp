// The control commands: circus's set and reply shapes (circus/commands/*.py), plus `logs`.
// Queries are answered at once; commands that change something run one at a time, in the
// order they arrived (circus refuses a command while another runs; we queue it).
#include <fnmatch.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "arbiter.hpp"
#include "trapeze/conf/load.hpp"
#include "trapeze/conf/paths.hpp"
#include "trapeze/conf/show.hpp"

namespace trapeze::arbiter {
namespace {

using json = nlohmann::json;
using ctl::ErrorCode;
using watchers::WatcherState;

bool settled(WatcherState s) {
  return s != WatcherState::starting && s != WatcherState::stopping;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// "TERM", "SIGTERM", "term" or 15.
std::optional<int> signal_number(const json& v) {
  if (v.is_number_integer()) {
    auto n = v.get<long long>();
    if (n > 0 && n < NSIG) return static_cast<int>(n);
    return std::nullopt;
  }
  if (!v.is_string()) return std::nullopt;
  std::string name = v.get<std::string>();
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
    // from_chars, not stoll: a number past long long must be "signal invalid", not an
    // exception out of the loop that ends the arbiter.
    long long n = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), n);
    if (ec != std::errc() || end != name.data() + name.size()) return std::nullopt;
    return signal_number(json(n));
  }
  for (int s = 1; s < NSIG; ++s)
    if (const char* abbrev = sigabbrev_np(s); abbrev && name == abbrev) return s;
  return std::nullopt;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The children of `pid`, from /proc (every thread's list).
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::istringstream in(read_text(it->path() / "children"));
    for (pid_t child; in >> child;) out.push_back(child);
  }
  return out;
}

json value_text(const json& v) {
  if (v.is_string()) return v;
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number()) return v.dump();
  return nullptr;
}

}  // namespace

void Arbiter::when(std::function<bool()> is_settled, Done then) {
  if (is_settled()) {
    then();
    return;
  }
  waiters_.emplace_back(std::move(is_settled), std::move(then));
}

void Arbiter::check_waiters() {
  // A continuation may add waiters (restart: stopped, now start): take the list first.
  auto pending = std::move(waiters_);
  waiters_.clear();
  for (auto& [is_settled, then] : pending) {
    if (is_settled())
      then();
    else
      waiters_.emplace_back(std::move(is_settled), std::move(then));
  }
}

void Arbiter::run_next_job() {
  if (job_running_ || jobs_.empty()) return;
  job_running_ = true;
  Job job = std::move(jobs_.front());
  jobs_.pop_front();
  job([this] {
    job_running_ = false;
    loop_.defer([this] { run_next_job(); });
  });
}

std::vector<watchers::Watcher*> Arbiter::match(const ctl::Request& req, ControlServer::Reply& reply) {
  std::string name = req.properties.value("name", "");
  std::string how = req.properties.value("match", "glob");
  std::vector<watchers::Watcher*> out;
  if (how == "simple") {
    if (auto* w = find(lower(name))) out.push_back(w);
  } else if (how == "glob") {
    std::string pattern = lower(name);
    for (auto& [n, w] : watchers_)
      if (fnmatch(pattern.c_str(), lower(n).c_str(), 0) == 0) out.push_back(w.get());
  } else {
    reply.error(ErrorCode::message_error, fmt::format("unknown match method {}", how));
    return {};
  }
  if (out.empty()) reply.error(ErrorCode::message_error, fmt::format("program {} not found", name));
  std::sort(out.begin(), out.end(),
            [](auto* a, auto* b) { return a->config().priority < b->config().priority; });
  return out;
}

void Arbiter::start_all(Done done) {
  std::vector<std::string> names;
  for (const auto& [name, w] : watchers_)
    if (w->state() == WatcherState::stopped || w->state() == WatcherState::failed) names.push_back(name);
  begin_start(names);
  when([this] { return phase_ != Phase::starting; }, std::move(done));
}

void Arbiter::stop_all(Done done) {
  shutdown(false);
  when([this] { return phase_ != Phase::stopping; }, std::move(done));
}

void Arbiter::replace_after_stop(const std::string& name, std::unique_ptr<conf::WatcherConfig> cfg,
                                 bool start) {
  auto* w = find(name);
  after_stop_[name] = AfterStop{std::move(cfg), start};
  w->stop();
  if (settled(w->state())) loop_.defer([this, name] { state_changed(name); });
}

void Arbiter::on_request(ctl::Request req, ControlServer::Reply reply) {
  static const std::set<std::string> queries = {"status", "list",        "numprocesses",  "numwatchers",
                                                "get",    "options",     "globaloptions", "stats",
                                                "dstats", "listsockets", "logs",
                                                "checks", "notify", "dispatches", "operations"};
  if (queries.count(req.command)) {
    query(req, reply);
    return;
  }
  // Everything else changes something: in order, one at a time.
  jobs_.push_back([this, req = std::move(req), reply = std::move(reply)](Done done) mutable {
    const std::string& cmd = req.command;
    bool waiting = req.waiting;
    // Replies now, or (with waiting) once the work is done; the next job waits either way.
    auto finish = [reply, waiting, done](json props = json::object()) mutable {
      if (waiting) reply.ok(std::move(props));
      done();
    };
    if (!waiting) {
      // circus answers start/stop/... at once unless told to wait; queries of the result
      // then see the work in progress.
      if (cmd != "incr" && cmd != "decr" && cmd != "add" && cmd != "set" && cmd != "signal" && cmd != "kill")
        reply.ok();
    }
    auto after = [this](std::vector<watchers::Watcher*> ws) {
      std::vector<std::string> names;
      for (auto* w : ws) names.push_back(w->name());
      return [this, names] {
        for (auto& n : names)
          if (auto* w = find(n); w && !settled(w->state())) return false;
        return !after_stop_.size() ||
               std::none_of(names.begin(), names.end(), [&](auto& n) { return after_stop_.count(n) > 0; });
      };
    };

    // Rolling restarts and graceful reloads go to the watchers' operation queues: this job
    // ends once they are queued; with waiting, the reply comes when the last one ended.
    bool rolling = cmd == "restart" && req.properties.value("rolling", false);
    bool graceful_reload = cmd == "reload" && req.properties.value("graceful", true);
    if (rolling || graceful_reload) {
      std::vector<watchers::Watcher*> ws;
      if (req.properties.contains("name")) {
        ws = match(req, reply);
        if (ws.empty()) return done();
      } else {
        for (auto& [n, w] : watchers_) ws.push_back(w.get());
      }
      struct Tally {
        std::size_t left = 0;
        std::string error;
      };
      auto tally = std::make_shared<Tally>();
      tally->left = ws.size();
      auto waiter = [reply, waiting, tally](const watchers::RolloutResult& r) mutable {
        if (!r.ok && tally->error.empty())
          tally->error = r.slot ? fmt::format("{} (slot {}, {} attempts)", r.error, r.slot, r.attempts) : r.error;
        if (--tally->left > 0 || !waiting) return;
        if (tally->error.empty())
          reply.ok();
        else
          reply.error(ErrorCode::command_error, tally->error);
      };
      if (ws.empty() && waiting) reply.ok();
      for (auto* w : ws) {
        auto op = std::make_shared<Operation>();
        op->kind = rolling ? Operation::Kind::rolling_restart : Operation::Kind::reload;
        op->plan.max_retry = w->config().max_retry;
        if (rolling) {
          op->plan.batch = static_cast<int>(std::clamp<long long>(req.properties.value("batch", 1LL), 1, 1 << 20));
          op->plan.surge = req.properties.value("surge", false);
          if (req.properties.contains("max_retry"))
            op->plan.max_retry = static_cast<int>(std::clamp<long long>(req.properties["max_retry"].get<long long>(), -1, 1 << 20));
        } else {
          // circus's graceful reload: every replacement first, the old processes stopped once
          // the new ones are ready.
          op->plan.batch = std::max(w->config().numprocesses, 1);
          op->plan.surge = true;
        }
        queue_operation(w->name(), std::move(op), waiter);
      }
      return done();
    }

    if (cmd == "start" || cmd == "stop" || cmd == "restart" || cmd == "reload") {
      if (!req.properties.contains("name")) {
        if (cmd == "start") return start_all([finish]() mutable { finish(); });
        if (cmd == "stop") return stop_all([finish]() mutable { finish(); });
        if (cmd == "reload") {
          // circus's reload of everything: send_hup watchers get SIGHUP, the others restart.
          for (auto& [n, w] : watchers_)
            if (w->config().send_hup) w->signal_all(SIGHUP);
        }
        return stop_all([this, finish]() mutable { start_all([finish]() mutable { finish(); }); });
      }
      auto ws = match(req, reply);
      if (ws.empty()) return done();
      if (cmd == "start") {
        for (auto* w : ws) w->start();
      } else if (cmd == "stop") {
        for (auto it = ws.rbegin(); it != ws.rend(); ++it) (*it)->stop();
      } else {
        std::vector<watchers::Watcher*> restart;
        for (auto* w : ws) {
          if (cmd == "reload" && w->config().send_hup)
            w->signal_all(SIGHUP);
          else
            restart.push_back(w);
        }
        for (auto* w : restart) w->stop();
        auto names = std::make_shared<std::vector<std::string>>();
        for (auto* w : restart) names->push_back(w->name());
        return when(after(restart), [this, names, after, finish]() mutable {
          std::vector<watchers::Watcher*> again;
          for (auto& n : *names)
            if (auto* w = find(n)) {
              w->start();
              again.push_back(w);
            }
          when(after(again), [finish]() mutable { finish(); });
        });
      }
      return when(after(ws), [finish]() mutable { finish(); });
    }

    if (cmd == "incr" || cmd == "decr") {
      auto* w = find(lower(req.properties["name"].get<std::string>()));
      if (!w) {
        reply.error(ErrorCode::message_error,
                    fmt::format("program {} not found", req.properties["name"].get<std::string>()));
        return done();
      }
      if (w->config().singleton) {
        reply.ok({{"numprocesses", w->config().numprocesses}, {"singleton", true}});
        return done();
      }
      int nb = static_cast<int>(req.properties.value("nb", 1LL));
      // Through the watcher's operation queue: after a rollout in progress, not into it.
      auto op = std::make_shared<Operation>();
      op->kind = Operation::Kind::numprocesses;
      op->count = cmd == "incr" ? nb : -nb;
      op->relative = true;
      std::string name = w->name();
      queue_operation(name, std::move(op), [this, reply, name](const watchers::RolloutResult&) mutable {
        auto* now = find(name);
        reply.ok({{"numprocesses", now ? now->config().numprocesses : 0}});
      });
      return done();
    }
    if (cmd == "reloadconfig") {
      reload();
      return when(
          [this] {
            return after_stop_.empty() && std::all_of(watchers_.begin(), watchers_.end(), [this](auto& kv) {
                     return settled(kv.second->state()) && operations_idle(kv.first);
                   });
          },
          [finish]() mutable { finish(); });
    }
    if (cmd == "add") {
      if (auto* w = cmd_add(req, reply)) {
        if (req.properties.value("start", false)) w->start();
        reply.ok();
      }
      return done();
    }
    if (cmd == "rm") {
      auto ws = match({req.id, req.command, {{"name", req.properties["name"]}, {"match", "simple"}}}, reply);
      if (ws.empty()) return done();
      std::string name = ws[0]->name();
      replace_after_stop(name, nullptr, false);
      return when([this, name] { return !after_stop_.count(name); }, [finish]() mutable { finish(); });
    }
    if (cmd == "set") return cmd_set(req, reply, done);
    if (cmd == "signal") {
      cmd_signal(req, reply);
      return done();
    }
    if (cmd == "kill") {
      auto ws = match({req.id, req.command, {{"name", req.properties["name"]}, {"match", "simple"}}}, reply);
      if (ws.empty()) return done();
      std::optional<int> signum;
      if (req.properties.contains("signum")) {
        signum = signal_number(req.properties["signum"]);
        if (!signum) {
          reply.error(ErrorCode::message_error, "signal invalid");
          return done();
        }
      }
      auto* w = ws[0];
      if (req.properties.contains("pid")) {
        if (!w->kill_process(static_cast<pid_t>(req.properties["pid"].get<long long>()), signum)) {
          reply.error(ErrorCode::message_error,
                      fmt::format("process {} not found in {}", req.properties["pid"].dump(), w->name()));
          return done();
        }
      } else {
        for (auto& p : w->processes()) w->kill_process(p.pid, signum);
      }
      reply.ok();
      return done();
    }
    if (cmd == "quit") {
      shutdown(true);
      return done();
    }
    reply.error(ErrorCode::unknown_command, fmt::format("unknown command: {}", cmd));
    done();
  });
  run_next_job();
}

watchers::Watcher* Arbiter::cmd_add(const ctl::Request& req, ControlServer::Reply& reply) {
  std::string name = lower(req.properties["name"].get<std::string>());
  auto fail = [&](ErrorCode code, const std::string& reason) -> watchers::Watcher* {
    reply.error(code, reason);
    return nullptr;
  };
  if (find(name)) return fail(ErrorCode::command_error, fmt::format("watcher {} already exists", name));
  // The options go through the INI loader, so they are checked exactly as in a config file; a
  // line break would let one value write other options (cmd "x\nuid = 0").
  for (const char* key : {"name", "cmd", "args"}) {
    if (!req.properties.contains(key)) continue;
    if (req.properties[key].get<std::string>().find_first_of("\r\n") != std::string::npos)
      return fail(ErrorCode::message_error, fmt::format("{}: line breaks are not allowed", key));
  }
  std::string text = fmt::format("[watcher:{}]\ncmd = {}\n", name, req.properties["cmd"].get<std::string>());
  if (req.properties.contains("args")) text += "args = " + req.properties["args"].get<std::string>() + "\n";
  const json options = req.properties.value("options", json::object());
  for (auto& [key, value] : options.items()) {
    json v = value_text(value);
    if (v.is_null())
      return fail(ErrorCode::message_error,
                  fmt::format("option {}: expected a string, number or boolean", key));
    std::string s = v.get<std::string>();
    if (key.find_first_of("\r\n=:[]") != std::string::npos || s.find_first_of("\r\n") != std::string::npos)
      return fail(ErrorCode::message_error, fmt::format("option {}: line breaks are not allowed", key));
    text += key + " = " + s + "\n";
  }
  conf::Config added;
  try {
    added = conf::load_ini_text(text, config_.path, conf::LoadOptions::from_process());
  } catch (const conf::ConfigError& e) {
    std::string reason;
    for (const auto& d : e.diagnostics())
      if (d.severity == conf::Severity::error)
        reason += (reason.empty() ? "" : "; ") + d.key + ": " + d.message;
    return fail(ErrorCode::message_error, reason);
  }
  if (added.watchers.size() != 1) return fail(ErrorCode::message_error, "cmd: line breaks are not allowed");
  auto unusable = watchers::load_hook_plugins(added.watchers[0], plugins_);
  if (!unusable.empty()) return fail(ErrorCode::message_error, unusable[0].key + ": " + unusable[0].message);
  add_watcher(added.watchers[0]);
  publish(name, "add", {});
  return find(name);
}

void Arbiter::cmd_set(const ctl::Request& req, ControlServer::Reply& reply, Done done) {
  auto ws = match({req.id, req.command, {{"name", req.properties["name"]}, {"match", "simple"}}}, reply);
  if (ws.empty()) return done();
  auto* w = ws[0];
  conf::WatcherConfig next = w->config();
  // Each option is read by the INI loader on its own, then copied over: the checks are the
  // config file's.
  std::string text = fmt::format("[watcher:{}]\ncmd = {}\n", w->name(), w->config().cmd);
  std::vector<std::string> keys;
  for (auto& [key, value] : req.properties["options"].items()) {
    json v = value_text(value);
    if (v.is_null() || key.find_first_of("\n=:[]") != std::string::npos ||
        v.get<std::string>().find('\n') != std::string::npos) {
      reply.error(ErrorCode::message_error,
                  fmt::format("option {}: expected a one-line string, number or boolean", key));
      return done();
    }
    text += key + " = " + v.get<std::string>() + "\n";
    keys.push_back(key);
  }
  conf::Config parsed;
  try {
    auto options = conf::LoadOptions::from_process();
    options.check_commands = false;
    parsed = conf::load_ini_text(text, config_.path, options);
  } catch (const conf::ConfigError& e) {
    std::string reason;
    for (const auto& d : e.diagnostics())
      if (d.severity == conf::Severity::error)
        reason += (reason.empty() ? "" : "; ") + d.key + ": " + d.message;
    reply.error(ErrorCode::message_error, reason);
    return done();
  }
  const conf::WatcherConfig& p = parsed.watchers.at(0);
  bool only_count = true;
  for (auto& key : keys) {
    if (key == "numprocesses")
      next.numprocesses = p.numprocesses;
    else {
      only_count = false;
      if (key == "cmd")
        next.cmd = p.cmd;
      else if (key == "args")
        next.args = p.args;
      else if (key == "warmup_delay")
        next.warmup_delay = p.warmup_delay;
      else if (key == "graceful_timeout")
        next.graceful_timeout = p.graceful_timeout;
      else if (key == "stop_signal")
        next.stop_signal = p.stop_signal;
      else if (key == "max_age")
        next.max_age = p.max_age;
      else if (key == "max_age_variance")
        next.max_age_variance = p.max_age_variance;
      else if (key == "min_uptime")
        next.min_uptime = p.min_uptime;
      else if (key == "max_retry")
        next.max_retry = p.max_retry;
      else if (key == "respawn")
        next.respawn = p.respawn;
      else if (key == "priority")
        next.priority = p.priority;
      else if (key == "working_dir")
        next.working_dir = p.working_dir;
      else if (key == "send_hup")
        next.send_hup = p.send_hup;
      else if (key == "singleton")
        next.singleton = p.singleton;
      else if (key == "autostart")
        next.autostart = p.autostart;
      else {
        reply.error(ErrorCode::message_error, fmt::format("option {} cannot be set at run time", key));
        return done();
      }
    }
  }
  // Both through the watcher's operation queue, after whatever it already has to do.
  auto op = std::make_shared<Operation>();
  std::string name = w->name();
  bool waiting = req.waiting;
  if (only_count) {
    op->kind = Operation::Kind::numprocesses;
    op->count = next.numprocesses;
    queue_operation(name, std::move(op), [reply](const watchers::RolloutResult&) mutable { reply.ok(); });
    return done();
  }
  op->kind = Operation::Kind::replace;
  op->config = std::make_shared<conf::WatcherConfig>(std::move(next));
  op->start_after = !(w->state() == WatcherState::stopped || w->state() == WatcherState::failed);
  if (!waiting) reply.ok();
  queue_operation(name, std::move(op), [reply, waiting](const watchers::RolloutResult&) mutable {
    if (waiting) reply.ok();
  });
  done();
}

void Arbiter::cmd_signal(const ctl::Request& req, ControlServer::Reply& reply) {
  auto ws = match({req.id, req.command, {{"name", req.properties["name"]}, {"match", "simple"}}}, reply);
  if (ws.empty()) return;
  auto signum = signal_number(req.properties["signum"]);
  if (!signum) return reply.error(ErrorCode::message_error, "signal invalid");
  if (req.properties.contains("childpid") && !req.properties.contains("pid"))
    return reply.error(ErrorCode::message_error, "cannot specify childpid without pid");
  std::vector<pid_t> pids;
  for (auto& p : ws[0]->processes()) pids.push_back(p.pid);
  if (req.properties.contains("pid")) {
    auto pid = static_cast<pid_t>(req.properties["pid"].get<long long>());
    if (std::find(pids.begin(), pids.end(), pid) == pids.end())
      return reply.error(ErrorCode::message_error,
                         fmt::format("process {} not found in {}", pid, ws[0]->name()));
    pids = {pid};
  }
  bool children = req.properties.value("children", false);
  bool recursive = req.properties.value("recursive", false);
  for (pid_t pid : pids) {
    if (req.properties.contains("childpid")) {
      auto child = static_cast<pid_t>(req.properties["childpid"].get<long long>());
      auto kids = children_of(pid);
      if (std::find(kids.begin(), kids.end(), child) == kids.end())
        return reply.error(ErrorCode::message_error, fmt::format("process {} has no child {}", pid, child));
      ::kill(child, *signum);
      continue;
    }
    if (!children) ::kill(pid, *signum);
    if (children || recursive) {
      std::vector<pid_t> todo = children_of(pid);
      while (!todo.empty()) {
        pid_t c = todo.back();
        todo.pop_back();
        ::kill(c, *signum);
        if (recursive)
          for (pid_t g : children_of(c)) todo.push_back(g);
      }
    }
  }
  reply.ok();
}

json Arbiter::process_stats(const watchers::Watcher&, const watchers::ProcessInfo& p) const {
  json info = {{"pid", p.pid},
               {"wid", p.wid},
               {"started", p.started_at},
               {"age", unix_now() - p.started_at},
               {"status", std::string(watchers::to_string(p.state))}};
  std::string stat = read_text(fmt::format("/proc/{}/stat", p.pid));
  auto close = stat.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(stat.substr(close + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(rest)),
                               std::istream_iterator<std::string>());
    // Fields after the name, from "state" (index 0 here, field 3 in proc(5)).
    if (f.size() > 22) {
      double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
      double cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
      long long rss_pages = std::stoll(f[21]);
      info["ctime"] = cpu_seconds;
      info["cpu"] = info["age"].get<double>() > 0 ? 100.0 * cpu_seconds / info["age"].get<double>() : 0.0;
      info["nice"] = std::stoll(f[16]);
      info["mem_info1"] = rss_pages * sysconf(_SC_PAGESIZE);
      info["mem_info2"] = std::stoll(f[20]);
      long long total = sysconf(_SC_PHYS_PAGES);
      info["mem"] = total > 0 ? 100.0 * static_cast<double>(rss_pages) / static_cast<double>(total) : 0.0;
    }
  }
  std::string cmdline = read_text(fmt::format("/proc/{}/cmdline", p.pid));
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  while (!cmdline.empty() && cmdline.back() == ' ') cmdline.pop_back();
  info["cmdline"] = cmdline;
  json kids = json::array();
  for (pid_t c : children_of(p.pid)) kids.push_back(c);
  info["children"] = kids;
  return info;
}

json Arbiter::arbiter_stats() const {
  json info = {{"pid", getpid()}, {"version", TRAPEZE_VERSION}};
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  info["cpu_seconds"] = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                        static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  info["max_rss_kib"] = ru.ru_maxrss;
  std::size_t fds = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++fds;
  info["fds"] = fds;
  const auto& ls = loop_.stats();
  info["loop"] = {{"iterations", ls.iterations}, {"timers_fired", ls.timers_fired}, {"posted", ls.posted}};
  auto out = output_.totals();
  info["output"] = {{"written_bytes", out.written_bytes},
                    {"dropped_bytes", out.dropped_bytes},
                    {"write_errors", out.write_errors},
                    {"rotations", out.rotations}};
  json ws = json::object();
  for (auto& [name, w] : watchers_) {
    const auto& s = w->stats();
    ws[name] = {{"spawns", s.spawns},
                {"spawn_failures", s.spawn_failures},
                {"reaps", s.reaps},
                {"kills", s.kills},
                {"hook_failures", s.hook_failures}};
  }
  info["watchers"] = ws;
  info["jobs_queued"] = jobs_.size() + (job_running_ ? 1 : 0);
  auto hs = hooks_.stats();
  info["hooks"] = {{"calls", hs.calls},         {"timeouts", hs.timeouts}, {"threads", hs.threads},
                   {"busy", hs.busy},           {"abandoned", hs.abandoned}, {"queued", hs.queued}};
  return info;
}

void Arbiter::query(const ctl::Request& req, ControlServer::Reply& reply) {
  const std::string& cmd = req.command;
  const json& props = req.properties;
  auto named = [&]() -> watchers::Watcher* {
    auto* w = find(lower(props["name"].get<std::string>()));
    if (!w)
      reply.error(ErrorCode::message_error,
                  fmt::format("program {} not found", props["name"].get<std::string>()));
    return w;
  };
  if (cmd == "status") {
    if (props.contains("name")) {
      // circus's quirk (the state in place of "ok"), plus each process and whether it is ready.
      if (auto* w = named()) {
        json processes = json::array();
        for (const auto& p : w->processes())
          processes.push_back({{"pid", p.pid},
                               {"wid", p.wid},
                               {"state", std::string(watchers::to_string(p.state))},
                               {"ready", p.state == watchers::ProcessState::ready}});
        reply.ok({{"status", std::string(watchers::to_string(w->state()))}, {"processes", processes}});
      }
      return;
    }
    json statuses = json::object();
    for (auto& [n, w] : watchers_) statuses[n] = std::string(watchers::to_string(w->state()));
    return reply.ok({{"statuses", statuses}});
  }
  if (cmd == "list") {
    if (props.contains("name")) {
      if (auto* w = named()) {
        json pids = json::array();
        for (auto& p : w->processes()) pids.push_back(p.pid);
        reply.ok({{"pids", pids}});
      }
      return;
    }
    json names = json::array();
    for (auto& [n, w] : watchers_) names.push_back(n);
    return reply.ok({{"watchers", names}});
  }
  if (cmd == "numprocesses") {
    if (props.contains("name")) {
      if (auto* w = named()) reply.ok({{"numprocesses", w->processes().size()}, {"watcher_name", w->name()}});
      return;
    }
    std::size_t total = 0;
    for (auto& [n, w] : watchers_) total += w->processes().size();
    return reply.ok({{"numprocesses", total}});
  }
  if (cmd == "numwatchers") return reply.ok({{"numwatchers", watchers_.size()}});
  if (cmd == "options" || cmd == "get") {
    auto* w = named();
    if (!w) return;
    json all = json::parse(conf::to_json(w->config()).dump());
    all["numprocesses"] = w->config().numprocesses;
    if (cmd == "options") return reply.ok({{"options", all}});
    json out = json::object();
    for (auto& key : props["keys"]) {
      auto k = key.get<std::string>();
      if (!all.contains(k))
        return reply.error(ErrorCode::message_error, fmt::format("'{}' option not found", k));
      out[k] = all[k];
    }
    return reply.ok({{"options", out}});
  }
  if (cmd == "globaloptions") {
    const auto& a = config_.arbiter;
    json all = {{"endpoint", control_->endpoint()},
                {"pubsub_endpoint", bus_->endpoint()},
                {"check_delay", std::chrono::duration<double>(a.check_delay).count()},
                {"multicast_endpoint", nullptr},
                {"stats_endpoint", nullptr},
                {"statsd", false},
                {"loglevel", a.loglevel},
                {"logoutput", a.logoutput},
                {"warmup_delay", std::chrono::duration<double>(a.warmup_delay).count()},
                {"priority_order", std::string(conf::to_string(a.priority_order))},
                {"pidfile", a.pidfile}};
    std::string wanted = props.value("option", props.value("key", ""));
    if (wanted.empty()) return reply.ok({{"options", all}});
    if (!all.contains(wanted))
      return reply.error(ErrorCode::message_error, fmt::format("'{}' not an existing option", wanted));
    return reply.ok({{"options", {{wanted, all[wanted]}}}});
  }
  if (cmd == "stats") {
    if (props.contains("name")) {
      auto* w = named();
      if (!w) return;
      if (props.contains("process")) {
        auto pid = props["process"].get<long long>();
        for (auto& p : w->processes())
          if (p.pid == pid) return reply.ok({{"process", pid}, {"info", process_stats(*w, p)}});
        return reply.error(ErrorCode::message_error,
                           fmt::format("process {} not found in {}", pid, w->name()));
      }
      json info = json::object();
      for (auto& p : w->processes()) info[std::to_string(p.pid)] = process_stats(*w, p);
      return reply.ok({{"name", w->name()}, {"info", info}});
    }
    json infos = json::object();
    for (auto& [n, w] : watchers_) {
      json info = json::object();
      for (auto& p : w->processes()) info[std::to_string(p.pid)] = process_stats(*w, p);
      infos[n] = info;
    }
    return reply.ok({{"infos", infos}});
  }
  if (cmd == "dstats") return reply.ok({{"info", arbiter_stats()}});
  if (cmd == "listsockets") {
    // circus's shape: [fd, "socket 'NAME' at HOST:PORT"] pairs, by fd.
    json list = json::array();
    for (const auto& s : sockets_) list.push_back(json::array({s.fd.get(), watchers::describe(s)}));
    std::sort(list.begin(), list.end());
    return reply.ok({{"sockets", list}});
  }
  if (cmd == "logs") {
    auto* w = named();
    if (!w) return;
    std::string tail = w->output_tail();
    auto lines = static_cast<std::size_t>(props.value("lines", 100LL));
    // The last `lines` lines of the tail.
    std::size_t pos = tail.size();
    if (!tail.empty() && tail.back() == '\n') --pos;
    for (std::size_t n = 0; n < lines && pos != std::string::npos && pos > 0; ++n)
      pos = tail.rfind('\n', pos - 1);
    std::string out = pos == std::string::npos || pos == 0 ? tail : tail.substr(pos + 1);
    return reply.ok({{"name", w->name()}, {"output", out}});
  }
  if (cmd == "checks") {
    json out = json::array();
    for (auto& [n, w] : watchers_) {
      if (props.contains("name") && n != lower(props["name"].get<std::string>())) continue;
      for (const auto& c : w->check_status())
        out.push_back({{"watcher", n},
                       {"name", c.name},
                       {"kind", std::string(conf::to_string(c.kind))},
                       {"status", !c.running ? "inactive" : c.down ? "down" : "up"},
                       {"failures", c.failures},
                       {"threshold", c.threshold},
                       {"probes", c.probes},
                       {"last_error", c.last_error}});
    }
    if (props.contains("name") && !find(lower(props["name"].get<std::string>())))
      return reply.error(ErrorCode::message_error, fmt::format("program {} not found", props["name"].get<std::string>()));
    return reply.ok({{"checks", out}});
  }
  if (cmd == "operations") {
    json out = json::object();
    if (props.contains("name")) {
      auto* w = find(lower(props["name"].get<std::string>()));
      if (!w) return reply.error(ErrorCode::message_error, fmt::format("program {} not found", props["name"].get<std::string>()));
      out[w->name()] = operations_json(w->name());
    } else {
      for (const auto& [n, w] : watchers_) out[n] = operations_json(n);
    }
    return reply.ok({{"operations", out}});
  }
  if (cmd == "dispatches") {
    if (!waker_) return reply.error(ErrorCode::command_error, "no [juju] section in the config");
    return reply.ok({{"dispatches", waker_->entries()}});
  }
  if (cmd == "notify") {
    // A custom notice, Pebble's: repeats of one key keep its id, so equal notices collapse
    // while one is queued.
    if (!waker_) return reply.error(ErrorCode::command_error, "no [juju] section in the config");
    auto* w = named();
    if (!w) return;
    std::string key = props["key"].get<std::string>();
    if (key.empty() || key.size() > 255) return reply.error(ErrorCode::message_error, "notice key must be 1 to 255 characters");
    auto [it, fresh] = notices_.emplace(key, notices_.size() + 1);
    const auto& names = w->config().juju;
    std::string event = names.on_notice ? *names.on_notice : w->name() + "-workload-notice";
    if (event.empty()) return reply.error(ErrorCode::command_error, fmt::format("juju.on_notice of {} is false", w->name()));
    std::map<std::string, std::string> env = {{"JUJU_NOTICE_ID", std::to_string(it->second)},
                                              {"JUJU_NOTICE_TYPE", "custom"},
                                              {"JUJU_NOTICE_KEY", key}};
    const json data = props.value("data", json::object());
    for (auto& [k, v] : data.items())
      env["TRAPEZE_NOTICE_" + k] = v.is_string() ? v.get<std::string>() : v.dump();
    bool queued = false;
    try {
      queued = waker_->request(event, w->name(), env);
    } catch (const std::exception& e) {
      return reply.error(ErrorCode::os_error, e.what());
    }
    return reply.ok({{"event", event}, {"notice_id", it->second}, {"queued", queued}});
  }
  reply.error(ErrorCode::unknown_command, fmt::format("unknown command: {}", cmd));
}

}  // namespace trapeze::arbiter
