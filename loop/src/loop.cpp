#include "trapeze/loop/loop.hpp"

#include <sys/eventfd.h>
#include <sys/timerfd.h>

#include <cerrno>
#include <system_error>

namespace trapeze::loop {
namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::system_category(), what);
}

int checked(int rc, const char* what) {
  if (rc < 0) throw_errno(what);
  return rc;
}

// Tags the loop's own fds in epoll_event.data; watches carry a WatchEntry pointer instead.
constexpr std::uint64_t kTimerTag = 1;
constexpr std::uint64_t kEventTag = 2;

}  // namespace

FdWatch::FdWatch(FdWatch&& other) noexcept
    : loop_(std::exchange(other.loop_, nullptr)), id_(std::exchange(other.id_, 0)) {}

FdWatch& FdWatch::operator=(FdWatch&& other) noexcept {
  if (this != &other) {
    reset();
    loop_ = std::exchange(other.loop_, nullptr);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void FdWatch::modify(std::uint32_t events) {
  if (loop_) loop_->modify(id_, events);
}

void FdWatch::reset() {
  if (loop_) std::exchange(loop_, nullptr)->unwatch(id_);
}

Timer::Timer(Timer&& other) noexcept
    : loop_(std::exchange(other.loop_, nullptr)), id_(std::exchange(other.id_, 0)) {}

Timer& Timer::operator=(Timer&& other) noexcept {
  if (this != &other) {
    reset();
    loop_ = std::exchange(other.loop_, nullptr);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

bool Timer::pending() const {
  return loop_ != nullptr && loop_->timer_pending(id_);
}

void Timer::reset() {
  if (loop_) std::exchange(loop_, nullptr)->cancel(id_);
}

Loop::Loop()
    : epoll_(checked(epoll_create1(EPOLL_CLOEXEC), "epoll_create1")),
      timerfd_(checked(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), "timerfd_create")),
      eventfd_(checked(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd")) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTimerTag;
  checked(epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, timerfd_.get(), &ev), "epoll_ctl");
  ev.data.u64 = kEventTag;
  checked(epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, eventfd_.get(), &ev), "epoll_ctl");
}

Loop::~Loop() = default;

FdWatch Loop::watch(int fd, std::uint32_t events, FdCallback cb) {
  auto entry = std::make_unique<WatchEntry>();
  entry->fd = fd;
  entry->cb = std::move(cb);
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = entry.get();
  checked(epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
  std::uint64_t id = next_id_++;
  watches_.emplace(id, std::move(entry));
  return FdWatch(this, id);
}

void Loop::modify(std::uint64_t id, std::uint32_t events) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = it->second.get();
  checked(epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, it->second->fd, &ev), "epoll_ctl");
}

void Loop::unwatch(std::uint64_t id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  // The fd may be closed already (then the kernel dropped it from the set): ignore errors.
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second->fd, nullptr);
  it->second->live = false;
  // Events for it may still sit in this iteration's batch: free it after the batch.
  dead_watches_.push_back(std::move(it->second));
  watches_.erase(it);
}

Timer Loop::at(TimePoint when, Callback cb) {
  std::uint64_t id = next_id_++;
  auto pos = deadlines_.emplace(when, id);
  timers_.emplace(id, TimerEntry{when, std::move(cb), pos});
  if (when < armed_) rearm();
  return Timer(this, id);
}

void Loop::cancel(std::uint64_t id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  deadlines_.erase(it->second.pos);
  timers_.erase(it);
  // Left armed for a later deadline, the timerfd would only cost one spurious wake-up; disarm
  // it anyway when nothing is left, so an idle arbiter sleeps.
  if (deadlines_.empty()) rearm();
}

void Loop::rearm() {
  itimerspec spec{};
  if (deadlines_.empty()) {
    armed_ = TimePoint::max();
  } else {
    armed_ = deadlines_.begin()->first;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(armed_.time_since_epoch()).count();
    if (ns <= 0) ns = 1;  // 0 would disarm
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  }
  checked(timerfd_settime(timerfd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr), "timerfd_settime");
}

void Loop::fire_timers() {
  std::uint64_t expirations = 0;
  [[maybe_unused]] auto n = ::read(timerfd_.get(), &expirations, sizeof expirations);
  TimePoint now = Clock::now();
  // Take the due ones first: a callback may add a timer due now, which waits for the next
  // iteration rather than starving the fds.
  std::vector<std::uint64_t> due;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it)
    due.push_back(it->second);
  for (std::uint64_t id : due) {
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled by an earlier callback
    Callback cb = std::move(it->second.cb);
    deadlines_.erase(it->second.pos);
    timers_.erase(it);
    ++stats_.timers_fired;
    cb();
  }
  rearm();
}

void Loop::defer(Callback cb) {
  deferred_.push_back(std::move(cb));
}

void Loop::post(Callback cb) {
  {
    std::lock_guard lock(posted_mutex_);
    posted_.push_back(std::move(cb));
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(eventfd_.get(), &one, sizeof one);
}

void Loop::drain_posted() {
  std::uint64_t count = 0;
  [[maybe_unused]] auto n = ::read(eventfd_.get(), &count, sizeof count);
  std::vector<Callback> batch;
  {
    std::lock_guard lock(posted_mutex_);
    batch.swap(posted_);
  }
  stats_.posted += batch.size();
  for (auto& cb : batch) cb();
}

void Loop::run_deferred() {
  // Deferred work may defer more; run until none is left.
  while (!deferred_.empty()) {
    std::vector<Callback> batch;
    batch.swap(deferred_);
    for (auto& cb : batch) cb();
  }
  dead_watches_.clear();
}

void Loop::run() {
  stopping_ = false;
  constexpr int kBatch = 256;
  epoll_event events[kBatch];
  run_deferred();
  while (!stopping_) {
    int n = epoll_wait(epoll_.get(), events, kBatch, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("epoll_wait");
    }
    ++stats_.iterations;
    bool timers_due = false, posted = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kTimerTag) {
        timers_due = true;
      } else if (events[i].data.u64 == kEventTag) {
        posted = true;
      } else {
        auto* entry = static_cast<WatchEntry*>(events[i].data.ptr);
        if (entry->live) entry->cb(events[i].events);
      }
    }
    if (posted) drain_posted();
    if (timers_due) fire_timers();
    run_deferred();
  }
}

}  // namespace trapeze::loop
