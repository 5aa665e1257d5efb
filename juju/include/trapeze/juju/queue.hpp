// The charm waker's queue of dispatches, kept on disk so that no request is lost when the
// arbiter is killed (at-least-once: a dispatch may repeat, never vanish). Semantics of the
// rolling-ops charm library's operation queue: FIFO, a request equal to the last queued one is
// dropped, attempts and timestamps (UTC, ISO 8601) recorded per entry.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <stdexcept>
#include <string>

namespace trapeze::juju {

using Clock = std::chrono::system_clock;

struct Dispatch {
  std::uint64_t id = 0;                    // unique within the queue file, increasing
  std::string event;                       // the charm event (hook name): "redis-workload-ready"
  std::string workload;                    // the watcher: JUJU_WORKLOAD_NAME
  std::map<std::string, std::string> env;  // further variables: JUJU_PEBBLE_CHECK_NAME, JUJU_NOTICE_KEY, ...
  std::string requested_at;                // when it was queued
  std::string executed_at;                 // when the last attempt started; empty before the first
  int attempt = 0;                         // attempts started so far

  /// The same request: what would be dispatched, regardless of when and how often.
  bool same_request(const Dispatch& other) const {
    return event == other.event && workload == other.workload && env == other.env;
  }
  friend bool operator==(const Dispatch&, const Dispatch&) = default;
};

/// Thrown when the queue file cannot be read, parsed or written; what() names the file.
class QueueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Not thread-safe: the arbiter's loop thread owns it. Every change is on disk (written to a
/// temporary file, fsynced, renamed over the queue file, directory fsynced) before the call
/// returns, so whatever the caller acknowledges after a call survives a SIGKILL.
class DispatchQueue {
 public:
  /// Reads what a previous arbiter left at `path`; a missing file is an empty queue (nothing is
  /// written until the first change). Throws QueueError for an unreadable or malformed file.
  explicit DispatchQueue(std::string path);

  /// Appends a request, unless it equals the last queued one that has not started yet (a
  /// started one may have read the charm's state before the change this request reports, so
  /// it does not absorb it). Returns whether it was appended. Throws QueueError.
  bool push(std::string event, std::string workload, std::map<std::string, std::string> env,
            Clock::time_point now);

  /// The oldest entry, or nullptr.
  const Dispatch* head() const { return entries_.empty() ? nullptr : &entries_.front(); }
  /// Records that an attempt of the head starts now. Throws QueueError.
  void start_head(Clock::time_point now);
  /// Removes the head: dispatched, or given up. Throws QueueError.
  void pop_head();

  const std::deque<Dispatch>& entries() const { return entries_; }
  const std::string& path() const { return path_; }

 private:
  void save() const;

  std::string path_;
  std::deque<Dispatch> entries_;
  std::uint64_t next_id_ = 1;
};

/// "2026-11-22T17:40:00.123456Z".
std::string utc_iso8601(Clock::time_point t);

}  // namespace trapeze::juju
