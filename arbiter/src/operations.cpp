// The operation queue of each watcher: what rolling-ops does per unit, done per watcher. A
// rolling restart can take minutes; other watchers' commands do not wait for it, and what
// would change the same watcher waits its turn.
#include <spdlog/spdlog.h>

#include "arbiter.hpp"
#include "trapeze/juju/queue.hpp"

namespace trapeze::arbiter {
namespace {

using json = nlohmann::json;
using watchers::WatcherState;
constexpr std::size_t kFinishedKept = 16;

const char* kind_name(int kind) {
  static const char* names[] = {"rolling_restart", "reload", "numprocesses", "reconfigure", "replace"};
  return names[kind];
}

// rolling-ops's rule: a request equal to the last one queued adds nothing.
bool same_request(const auto& a, const auto& b) {
  if (a.kind != b.kind || a.relative || b.relative) return false;
  return a.plan.batch == b.plan.batch && a.plan.surge == b.plan.surge &&
         a.plan.max_retry == b.plan.max_retry && a.count == b.count && a.start_after == b.start_after &&
         (a.config == b.config || (a.config && b.config && *a.config == *b.config));
}

std::string when_text(std::chrono::system_clock::time_point t) {
  return t.time_since_epoch().count() == 0 ? std::string() : juju::utc_iso8601(t);
}

}  // namespace

void Arbiter::queue_operation(const std::string& watcher, OperationPtr op,
                              std::function<void(const watchers::RolloutResult&)> waiter) {
  OperationQueue& q = operations_[watcher];
  if (!q.queued.empty() && same_request(*q.queued.back(), *op)) {
    spdlog::info("watcher {}: {} already queued: joined it", watcher, kind_name(static_cast<int>(op->kind)));
    if (waiter) q.queued.back()->waiters.push_back(std::move(waiter));
    return;
  }
  op->requested_at = std::chrono::system_clock::now();
  if (waiter) op->waiters.push_back(std::move(waiter));
  q.queued.push_back(std::move(op));
  run_operation(watcher);
}

void Arbiter::run_operation(const std::string& watcher) {
  OperationQueue& q = operations_[watcher];
  if (q.running || q.queued.empty()) return;
  q.running = q.queued.front();
  q.queued.pop_front();
  q.running->state = "running";
  q.running->started_at = std::chrono::system_clock::now();
  execute(watcher, q.running);
}

// Runs `op` on `watcher`; every path ends in operation_done.
bool Arbiter::settled_or_gone(const std::string& watcher) {
  auto* w = find(watcher);
  return !w || (w->state() != WatcherState::starting && w->state() != WatcherState::stopping);
}

void Arbiter::execute(const std::string& watcher, const OperationPtr& op) {
  auto* w = find(watcher);
  if (!w) return operation_done(watcher, {false, fmt::format("watcher {} was removed", watcher), 0, 0});
  // A rollout or a reload of a watcher starting or stopping waits until it settles.
  bool changes_count = op->kind == Operation::Kind::numprocesses || op->kind == Operation::Kind::replace;
  if (!changes_count && (w->state() == WatcherState::starting || w->state() == WatcherState::stopping))
    return when([this, watcher] { return settled_or_gone(watcher); }, [this, watcher, op] { execute(watcher, op); });
  const bool active = w->state() == WatcherState::active;
  switch (op->kind) {
    case Operation::Kind::numprocesses:
      w->set_numprocesses(op->relative ? std::max(w->config().numprocesses + op->count, 0) : op->count);
      if (!op->relative) publish(watcher, "updated", {});  // set, reload: the options changed
      return operation_done(watcher, {});
    case Operation::Kind::replace:
      replace_after_stop(watcher, std::make_unique<conf::WatcherConfig>(*op->config), op->start_after);
      return when([this, watcher] { return !after_stop_.count(watcher) && settled_or_gone(watcher); },
                  [this, watcher] { operation_done(watcher, {}); });
    case Operation::Kind::reconfigure:
      w->reconfigure(*op->config);
      publish(watcher, "updated", {});
      if (!active) return operation_done(watcher, {});
      break;
    case Operation::Kind::reload:
      if (w->config().send_hup) {  // circus: the program rereads its config when told
        w->signal_all(SIGHUP);
        return operation_done(watcher, {});
      }
      break;
    case Operation::Kind::rolling_restart:
      break;
  }
  if (!active) {
    // Nothing runs to be replaced: a start.
    w->start();
    return when(
        [this, watcher] { return settled_or_gone(watcher); },
        [this, watcher] {
          auto* now = find(watcher);
          if (now && now->state() == WatcherState::active) return operation_done(watcher, {});
          operation_done(
              watcher,
              {false, now && !now->failure().empty() ? now->failure() : "the watcher did not start", 0, 0});
        });
  }
  w->roll(op->plan, [this, watcher](watchers::RolloutResult r) {
    // Not from inside the watcher's callback: the next operation may change it.
    loop_.defer([this, watcher, r = std::move(r)]() mutable { operation_done(watcher, std::move(r)); });
  });
}

void Arbiter::operation_done(const std::string& watcher, watchers::RolloutResult result) {
  OperationQueue& q = operations_[watcher];
  OperationPtr op = std::move(q.running);
  if (!op) return;
  op->finished_at = std::chrono::system_clock::now();
  op->state = result.ok ? "done" : "failed";
  op->error = result.error;
  op->attempt = result.attempts;
  for (auto& waiter : op->waiters) waiter(result);
  op->waiters.clear();
  q.finished.push_back(op);
  if (q.finished.size() > kFinishedKept) q.finished.pop_front();
  loop_.defer([this, watcher] {
    run_operation(watcher);
    check_waiters();
  });
}

bool Arbiter::operations_idle(const std::string& watcher) const {
  auto it = operations_.find(watcher);
  return it == operations_.end() || (!it->second.running && it->second.queued.empty());
}

json Arbiter::operations_json(const std::string& watcher) const {
  json out = json::array();
  auto it = operations_.find(watcher);
  if (it == operations_.end()) return out;
  auto add = [&](const OperationPtr& op) {
    json o = {{"operation", kind_name(static_cast<int>(op->kind))},
              {"state", op->state},
              {"requested_at", when_text(op->requested_at)},
              {"started_at", when_text(op->started_at)},
              {"finished_at", when_text(op->finished_at)}};
    if (op->kind == Operation::Kind::numprocesses) {
      o["numprocesses"] = op->count;
    } else if (op->kind != Operation::Kind::replace) {
      o["batch"] = op->plan.batch;
      o["surge"] = op->plan.surge;
      o["attempt"] = op->attempt;
      o["max_retry"] = op->plan.max_retry;
    }
    if (!op->error.empty()) o["error"] = op->error;
    out.push_back(std::move(o));
  };
  for (const auto& op : it->second.finished) add(op);
  if (it->second.running) add(it->second.running);
  for (const auto& op : it->second.queued) add(op);
  return out;
}

}  // namespace trapeze::arbiter
