// Where the stdout and stderr of supervised processes go: circus's stream classes (FileStream
// with size rotation, TimedRotatingFileStream, WatchedFileStream, StdoutStream, null), written
// by one writer thread so that a slow or full disk never holds up the loop.
//
// Threads: every public member of OutputWriter is called on the loop thread only. Bytes are
// copied into a per-sink queue and written by the writer thread; completions (`on_closed`,
// `on_drained`) are handed to `post`, which must run them on the loop thread.
//
// Nothing is dropped for being slow: when a sink's queue holds more than kHighWater bytes,
// `write` returns false and the caller stops reading that pipe (the child then blocks on its
// own write, as it would writing to a slow file) until `on_drained` fires. Bytes are dropped,
// and counted, only when the destination refuses them (ENOSPC, EIO, a file that cannot be opened).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "trapeze/conf/config.hpp"

namespace trapeze::watchers {

class Sink;  // one destination (a file, the arbiter's stdout, nothing); defined in output.cpp

struct OutputStats {
  std::uint64_t written_bytes = 0;  // reached the destination
  std::uint64_t dropped_bytes = 0;  // refused by the destination, or no destination
  std::uint64_t write_errors = 0;   // failed open/write/rotate calls
  std::uint64_t rotations = 0;
};

class OutputWriter {
 public:
  /// Runs `fn` on the loop thread, soon. Called from the writer thread.
  using Post = std::function<void(std::function<void()> fn)>;
  /// Called on the writer thread for problems worth a log line ("cannot open 'x': ...").
  using Log = std::function<void(std::string message)>;

  static constexpr std::size_t kHighWater = 4u << 20;  // per sink

  /// Starts the writer thread.
  OutputWriter(Post post, Log log);
  /// Writes everything still queued, then joins the writer thread. Completions not yet run are
  /// dropped (the loop is gone by then).
  ~OutputWriter();
  OutputWriter(const OutputWriter&) = delete;
  OutputWriter& operator=(const OutputWriter&) = delete;

  /// A destination for `stream` ("stdout" or "stderr") of watcher `watcher`, as `cfg` says.
  /// Files are opened (O_APPEND|O_CREAT|O_CLOEXEC, mode 0644) on the writer thread, on first
  /// write; a failure is logged and counted, and the bytes dropped. kind inherit and null
  /// discard. Several processes of one watcher share one sink.
  std::shared_ptr<Sink> open(const conf::StreamConfig& cfg, std::string watcher, std::string stream);

  /// Queues `bytes` read from process `pid`. Returns false when the sink's queue is above
  /// kHighWater after this write; the caller should stop reading and wait for `on_drained`.
  bool write(Sink& sink, pid_t pid, std::string_view bytes);

  /// Calls `fn` (on the loop, through post) once the sink's queue is below kHighWater/2.
  /// Replaces an earlier pending call.
  void on_drained(Sink& sink, std::function<void()> fn);

  /// `pid`'s stream reached EOF. Returns true when every byte queued before this call is
  /// already written (or dropped) and no unterminated line of `pid` is pending; otherwise `done`
  /// runs later (on the loop, through post) once that is so.
  [[nodiscard]] bool close(Sink& sink, pid_t pid, std::function<void()> done);

  /// Counters of one sink, and of all sinks. Read on the loop thread; may lag the writer by
  /// whatever it is writing now.
  OutputStats stats(const Sink& sink) const;
  OutputStats totals() const;

  /// Reopens every file sink (after logrotate, on SIGHUP or `reopen` command).
  void reopen();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace trapeze::watchers
