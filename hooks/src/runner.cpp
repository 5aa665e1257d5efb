#include "trapeze/hooks/runner.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "outcome.hpp"
#include "trapeze/hooks/host.hpp"

namespace trapeze::hooks {

namespace {

using Clock = std::chrono::steady_clock;

struct Job {
  HookRequest req;
  std::function<void(HookResult)> done;
  Clock::time_point submitted, deadline;
  std::atomic<int> cancelled{0};
  bool delivered = false;  // under the mutex: the result went to post (or was dropped)
  bool running = false;    // under the mutex
  bool abandoned = false;  // under the mutex: timed out while running
  std::string error;       // the hook's thread only: set_error's message
  int wake_fd = -1;        // under the mutex: an isolated call's eventfd, written on cancel

  // Under the mutex.
  void cancel() {
    cancelled.store(1);
    if (wake_fd >= 0) {
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
    }
  }
};

Job& job_of(const trapeze_hook_call* call) { return *static_cast<Job*>(call->host); }

const char* find_option(const Options* options, const char* key) {
  if (options == nullptr || key == nullptr) return nullptr;
  auto it = options->find(key);
  return it == options->end() ? nullptr : it->second.c_str();
}

const char* watcher_option(const trapeze_hook_call* call, const char* key) {
  return find_option(job_of(call).req.watcher_options.get(), key);
}

const char* hook_option(const trapeze_hook_call* call, const char* key) {
  return find_option(&job_of(call).req.hook_options, key);
}

void log_message(const trapeze_hook_call* call, trapeze_log_level level, const char* message) {
  auto spd = level == TRAPEZE_LOG_DEBUG     ? spdlog::level::debug
             : level == TRAPEZE_LOG_INFO    ? spdlog::level::info
             : level == TRAPEZE_LOG_WARNING ? spdlog::level::warn
                                            : spdlog::level::err;
  spdlog::log(spd, "watcher {}: hook {}: {}", call->watcher_name, call->hook_name, message ? message : "");
}

void set_error(const trapeze_hook_call* call, const char* message) {
  job_of(call).error = message ? message : "";
}

int is_cancelled(const trapeze_hook_call* call) { return job_of(call).cancelled.load(std::memory_order_relaxed); }

double millis_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Calls the hook on this thread.
HookResult call_hook(Job& job) {
  trapeze_hook_call call = detail::call_for(job.req, &job);
  call.watcher_option = watcher_option;
  call.hook_option = hook_option;
  call.log = log_message;
  call.set_error = set_error;
  call.cancelled = is_cancelled;
  HookResult result = detail::outcome_of(job.req.fn(&call), job.error);
  result.duration_ms = millis_since(job.submitted);
  return result;
}

}  // namespace

struct HookRunner::Shared {
  Post post;
  std::string host_binary = kSelfBinary;
  unsigned target = 4;
  unsigned max_abandoned = 16;

  mutable std::mutex mu;
  std::condition_variable work_cv, watch_cv;
  std::deque<std::shared_ptr<Job>> queue;
  std::list<std::shared_ptr<Job>> live;  // submitted, not yet delivered
  bool started = false, stopping = false;
  unsigned threads = 0, busy = 0, abandoned = 0;
  unsigned unhandled = 0;  // submitted, and `done` not yet run (or dropped)
  std::uint64_t calls = 0, timeouts = 0;
  std::thread watchdog;

  // Under mu. Hands the result on, once; nothing once stopping.
  void deliver(const std::shared_ptr<Job>& job, HookResult result) {
    if (job->delivered) return;
    job->delivered = true;
    live.remove(job);
    ++calls;
    if (result.outcome == HookOutcome::timed_out) ++timeouts;
    if (stopping) {
      --unhandled;
      return;
    }
    // `unhandled` counts down only once `done` ran, so pending() == 0 means every result was
    // acted on, not merely sent.
    post([self = self_, done = std::move(job->done), result = std::move(result)]() mutable {
      done(std::move(result));
      if (!self) return;
      std::lock_guard lock(self->mu);
      --self->unhandled;
    });
  }

  // Under mu. Threads start with every signal blocked: the loop takes them through signalfd.
  void start_thread(std::shared_ptr<Shared> self, bool worker) {
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    if (worker) {
      ++threads;
      std::thread([self] { self->work(); }).detach();
    } else {
      watchdog = std::thread([self] { self->watch(); });
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  void work() {
    std::unique_lock lock(mu);
    for (;;) {
      work_cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (stopping) break;
      std::shared_ptr<Job> job = std::move(queue.front());
      queue.pop_front();
      job->running = true;
      ++busy;
      lock.unlock();
      HookResult result = job->req.isolate ? call_isolated(*job) : call_hook(*job);
      lock.lock();
      --busy;
      job->running = false;
      deliver(job, std::move(result));
      if (job->abandoned) {
        // Back from a hook that timed out: a thread took this one's place meanwhile.
        --abandoned;
        if (threads - abandoned > target) break;
      }
    }
    --threads;
  }

  // On a hook thread: runs an isolated job in a host, which keeps its own deadline.
  HookResult call_isolated(Job& job) {
    int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    {
      std::lock_guard lock(mu);
      job.wake_fd = wake;
    }
    HookResult result = call_in_host(job.req, host_binary, job.deadline, job.cancelled, wake);
    {
      std::lock_guard lock(mu);
      job.wake_fd = -1;
    }
    if (wake >= 0) ::close(wake);
    result.duration_ms = millis_since(job.submitted);
    return result;
  }

  // The watchdog: sleeps until the earliest deadline; without calls, until one comes. An
  // isolated call that is running keeps its own deadline (it kills its host).
  void watch() {
    std::unique_lock lock(mu);
    while (!stopping) {
      std::shared_ptr<Job> first;
      for (auto& job : live)
        if (!(job->running && job->req.isolate) && (!first || job->deadline < first->deadline)) first = job;
      if (!first) {
        watch_cv.wait(lock);
        continue;
      }
      if (Clock::now() < first->deadline) {
        watch_cv.wait_until(lock, first->deadline);
        continue;
      }
      first->cancel();
      HookResult result{HookOutcome::timed_out, "timed out after " + timeout_text(first->req.timeout),
                        millis_since(first->submitted)};
      if (first->running) {
        first->abandoned = true;
        ++abandoned;
        if (threads - abandoned < target && abandoned <= max_abandoned) start_thread(self_, true);
        spdlog::warn("watcher {}: hook {} timed out after {}; its thread is abandoned ({} abandoned)",
                     first->req.watcher_name, first->req.hook_name, timeout_text(first->req.timeout),
                     abandoned);
      } else {
        queue.erase(std::remove(queue.begin(), queue.end(), first), queue.end());
        result.error += " (waiting for a hook thread)";
      }
      deliver(first, std::move(result));
    }
  }

  std::shared_ptr<Shared> self_;  // set while the watchdog runs; cleared at shutdown
};

HookRunner::HookRunner(Post post, unsigned threads, unsigned max_abandoned) : shared_(std::make_shared<Shared>()) {
  shared_->post = std::move(post);
  shared_->target = std::max(threads, 1u);
  shared_->max_abandoned = max_abandoned;
  // spdlog makes its registry and default logger on first use, inside libspdlog.so. Made here,
  // before any hook thread exists, no two threads race to make it; ThreadSanitizer cannot see
  // the library's own guard and reported the race when the first log came from hook threads.
  (void)spdlog::default_logger_raw();
}

HookRunner::~HookRunner() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stopping = true;
    for (auto& job : shared_->live) job->cancel();
    shared_->self_.reset();
  }
  shared_->work_cv.notify_all();
  shared_->watch_cv.notify_all();
  if (shared_->watchdog.joinable()) shared_->watchdog.join();
  // Worker threads hold the shared state and end on their own; one in a hook finishes it
  // and posts nothing.
}

void HookRunner::run(HookRequest req, std::function<void(HookResult)> done) {
  auto job = std::make_shared<Job>();
  job->req = std::move(req);
  job->done = std::move(done);
  job->submitted = Clock::now();
  job->deadline = job->submitted + job->req.timeout;
  {
    std::lock_guard lock(shared_->mu);
    if (shared_->stopping) return;
    if (!shared_->started) {
      // Threads start with the first hook: a config without hooks has none.
      shared_->started = true;
      shared_->self_ = shared_;
      for (unsigned i = 0; i < shared_->target; ++i) shared_->start_thread(shared_, true);
      shared_->start_thread(shared_, false);
    }
    shared_->queue.push_back(job);
    shared_->live.push_back(job);
    ++shared_->unhandled;
  }
  shared_->work_cv.notify_one();
  shared_->watch_cv.notify_one();
}

unsigned HookRunner::pending() const {
  std::lock_guard lock(shared_->mu);
  return shared_->unhandled;
}

RunnerStats HookRunner::stats() const {
  std::lock_guard lock(shared_->mu);
  return {shared_->calls,
          shared_->timeouts,
          shared_->threads,
          shared_->busy,
          shared_->abandoned,
          static_cast<unsigned>(shared_->queue.size())};
}

void HookRunner::cancel_all() {
  std::lock_guard lock(shared_->mu);
  for (auto& job : shared_->live) job->cancel();
}

void HookRunner::set_host_binary(std::string binary) {
  std::lock_guard lock(shared_->mu);
  shared_->host_binary = std::move(binary);
}

std::string timeout_text(std::chrono::milliseconds timeout) {
  auto ms = timeout.count();
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  if (ms < 1000) return fmt::format("{}ms", ms);
  return fmt::format("{:g}s", static_cast<double>(ms) / 1000.0);
}

}  // namespace trapeze::hooks
