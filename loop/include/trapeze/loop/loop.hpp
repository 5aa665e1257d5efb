// The event loop: one thread, epoll, one timerfd for every timer, an eventfd for work posted
// from other threads. Nothing polls: with no fd ready and no timer due, run() sleeps in
// epoll_wait with no timeout.
//
// Threads: everything here is called on the loop thread, except post(), which any thread may
// call. Callbacks run on the loop thread. A callback may add or remove any watch or timer,
// its own included; the entry is freed at the end of the iteration, never under its own feet.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "trapeze/loop/fd.hpp"

namespace trapeze::loop {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, as the timerfd
using TimePoint = Clock::time_point;

class Loop;

/// Interest in one fd, until destroyed or reset. Move-only.
class FdWatch {
 public:
  FdWatch() = default;
  ~FdWatch() { reset(); }
  FdWatch(FdWatch&& other) noexcept;
  FdWatch& operator=(FdWatch&& other) noexcept;
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;

  explicit operator bool() const { return loop_ != nullptr; }
  /// Changes the epoll events (0 pauses the watch without removing it).
  void modify(std::uint32_t events);
  void reset();

 private:
  friend class Loop;
  FdWatch(Loop* loop, std::uint64_t id) : loop_(loop), id_(id) {}
  Loop* loop_ = nullptr;
  std::uint64_t id_ = 0;
};

/// One pending timer, cancelled when destroyed or reset. Move-only.
class Timer {
 public:
  Timer() = default;
  ~Timer() { reset(); }
  Timer(Timer&& other) noexcept;
  Timer& operator=(Timer&& other) noexcept;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  /// True until the timer fired or was cancelled.
  bool pending() const;
  void reset();

 private:
  friend class Loop;
  Timer(Loop* loop, std::uint64_t id) : loop_(loop), id_(id) {}
  Loop* loop_ = nullptr;
  std::uint64_t id_ = 0;
};

struct LoopStats {
  std::uint64_t iterations = 0;  // epoll_wait returns
  std::uint64_t timers_fired = 0;
  std::uint64_t posted = 0;
};

class Loop {
 public:
  using FdCallback = std::function<void(std::uint32_t events)>;
  using Callback = std::function<void()>;

  /// Creates the epoll, timerfd and eventfd. Throws std::system_error.
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  /// Watches `fd` (not owned) for `events` (EPOLLIN, EPOLLOUT, ...). Throws std::system_error.
  [[nodiscard]] FdWatch watch(int fd, std::uint32_t events, FdCallback cb);
  /// Runs `cb` once at `when` (at once, next iteration, when that is past).
  [[nodiscard]] Timer at(TimePoint when, Callback cb);
  [[nodiscard]] Timer after(Clock::duration delay, Callback cb) {
    return at(Clock::now() + delay, std::move(cb));
  }

  /// Runs `cb` at the end of the current iteration (or of the next one, if called outside).
  void defer(Callback cb);
  /// Runs `cb` on the loop thread soon. Safe from any thread, and before run().
  void post(Callback cb);

  /// Runs until stop(). Returns after the iteration in which stop() was called.
  void run();
  void stop() { stopping_ = true; }

  const LoopStats& stats() const { return stats_; }

 private:
  friend class FdWatch;
  friend class Timer;

  struct WatchEntry {
    int fd = -1;
    FdCallback cb;
    bool live = true;
  };
  struct TimerEntry {
    TimePoint when;
    Callback cb;
    std::multimap<TimePoint, std::uint64_t>::iterator pos;
  };

  void unwatch(std::uint64_t id);
  void modify(std::uint64_t id, std::uint32_t events);
  void cancel(std::uint64_t id);
  bool timer_pending(std::uint64_t id) const { return timers_.count(id) != 0; }
  void rearm();
  void fire_timers();
  void drain_posted();
  void run_deferred();

  UniqueFd epoll_, timerfd_, eventfd_;
  std::map<std::uint64_t, std::unique_ptr<WatchEntry>> watches_;
  std::vector<std::unique_ptr<WatchEntry>> dead_watches_;  // freed at the end of an iteration
  std::map<std::uint64_t, TimerEntry> timers_;
  std::multimap<TimePoint, std::uint64_t> deadlines_;
  TimePoint armed_ = TimePoint::max();
  std::uint64_t next_id_ = 1;
  std::vector<Callback> deferred_;
  std::mutex posted_mutex_;
  std::vector<Callback> posted_;
  bool stopping_ = false;
  LoopStats stats_;
};

}  // namespace trapeze::loop
