#include "trapeze/watchers/output.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "output_rotation.hpp"

namespace trapeze::watchers {

namespace {

// Taken from one queue at a time, and the most one writev carries: big enough to write at
// disk speed, small enough that other sinks and completions are not kept waiting.
constexpr std::size_t kBatchBytes = 1u << 20;
constexpr std::size_t kMaxIov = IOV_MAX < 1024 ? IOV_MAX : 1024;
// A chatty process writes many small lines: they join the chunk before them (same pid) rather
// than each costing an allocation and an iovec.
constexpr std::size_t kMergeBelow = 4096;
constexpr std::size_t kMergeUpTo = 64u << 10;
// An unterminated line is held until its newline; past this it is ended anyway, so that a
// process printing no newline cannot make us hold unbounded memory.
constexpr std::size_t kMaxLine = 256u << 10;

std::string error_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

struct Counters {
  std::atomic<std::uint64_t> written{0}, dropped{0}, errors{0}, rotations{0};

  OutputStats load() const {
    return {written.load(std::memory_order_relaxed), dropped.load(std::memory_order_relaxed),
            errors.load(std::memory_order_relaxed), rotations.load(std::memory_order_relaxed)};
  }
};

void add(std::atomic<std::uint64_t>& a, std::uint64_t n) {
  a.fetch_add(n, std::memory_order_relaxed);
}

struct Chunk {
  pid_t pid = 0;
  bool eof = false;    // `pid`'s stream ended: end its line, then run `done`
  std::string bytes;   // empty when eof
  std::timespec at{};  // when it was read, for time prefixes
  std::function<void()> done;
};

// Where bytes end up. Sinks that write the same file with the same settings share one Target,
// so that stdout and stderr sent to one file rotate it once, not once each. Created on the
// loop thread; everything else happens on the writer thread.
struct Target {
  enum class Kind { arbiter_stdout, file, timed, watched };

  Target(Kind k, std::string p) : kind(k), path(std::move(p)) {}
  ~Target() {
    if (kind != Kind::arbiter_stdout && fd >= 0) ::close(fd);
  }
  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;

  const Kind kind;
  const std::string path;  // empty for the arbiter's stdout
  std::uint64_t max_bytes = 0;
  int backup_count = 0;
  std::optional<detail::TimedRotation> timed;
  bool bad_when = false;  // kind timed with a rotate_when we do not know: never rotates

  // Writer thread only.
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  std::uint64_t size = 0;
  std::time_t rollover_at = 0;  // 0: not computed yet
  bool bad_when_logged = false;
};

std::string target_key(const conf::StreamConfig& cfg) {
  return std::to_string(static_cast<int>(cfg.kind)) + '\n' + cfg.filename + '\n' +
         std::to_string(cfg.max_bytes) + '\n' + std::to_string(cfg.backup_count) + '\n' + cfg.rotate_when +
         '\n' + std::to_string(cfg.rotate_interval) + '\n' + (cfg.utc ? "utc" : "local");
}

}  // namespace

class Sink : public std::enable_shared_from_this<Sink> {
 public:
  enum class Mode {
    discard,      // inherit, null
    pass,         // files without time_format: bytes as they come
    time_prefix,  // files with time_format: "<time> [<pid>] | " before each line
    name_prefix,  // the arbiter's stdout: "<watcher>.<pid> | " before each line
  };

  Sink(Mode mode, const conf::StreamConfig& cfg, std::string watcher, std::string stream,
       std::shared_ptr<Target> target)
      : mode_(mode),
        time_format_(cfg.time_format),
        utc_(cfg.utc),
        watcher_(std::move(watcher)),
        stream_(std::move(stream)),
        target_(std::move(target)) {}

  std::string who() const { return "(watcher " + watcher_ + ", " + stream_ + ")"; }
  std::string where() const {
    return target_->kind == Target::Kind::arbiter_stdout ? "the arbiter's stdout" : "'" + target_->path + "'";
  }

  const Mode mode_;
  const std::string time_format_;
  const bool utc_;
  const std::string watcher_, stream_;
  const std::shared_ptr<Target> target_;  // null when discarding

  // Guarded by OutputWriter::Impl::mu_.
  std::deque<Chunk> queue_;
  std::size_t queued_bytes_ = 0;  // queued and being written
  bool scheduled_ = false;        // in the ready list, or being written
  std::function<void()> drained_;

  // Writer thread only.
  struct Line {
    std::string text;
    std::timespec at{};
  };
  std::unordered_map<pid_t, Line> lines_;  // unterminated lines, by pid (prefixing modes only)
  bool write_failing_ = false;             // logged an open/write failure; quiet until one succeeds
  bool rotate_failing_ = false;            // likewise for rotation
  std::uint64_t dropped_while_failing_ = 0;
  std::time_t cached_second_ = -1;  // time_format rendered for this second (when it has no %f)
  std::string cached_time_;

  Counters counters_;
};

struct OutputWriter::Impl {
  Impl(Post post, Log log) : post_(std::move(post)), log_(std::move(log)) {}

  std::shared_ptr<Target> file_target(const conf::StreamConfig& cfg);
  void schedule(Sink& s);  // with mu_ held

  // The writer thread.
  void run();
  void process(Sink& s, std::vector<Chunk>& batch, std::vector<std::function<void()>>& done);
  void add_lines(Sink& s, Chunk& c, std::string& out);
  void end_line(Sink& s, pid_t pid, std::string& out);
  void add_prefix(Sink& s, pid_t pid, const std::timespec& at, std::string& out);
  void emit(Sink& s, const std::vector<std::string_view>& spans);
  void emit(Sink& s, std::string& out);
  bool prepare(Sink& s, Target& t);
  bool open_file(Sink& s, Target& t, bool truncate);
  static void close_file(Target& t);
  std::size_t write_all(Sink& s, Target& t, std::size_t n);
  bool rotate_by_size(Sink& s, Target& t);
  void rotate_by_time(Sink& s, Target& t, std::time_t now);
  void delete_old_backups(Sink& s, Target& t);
  bool rename_file(Sink& s, const std::string& from, const std::string& to);
  void fail_write(Sink& s, std::string message);
  void fail_rotate(Sink& s, std::string message);
  void drop(Sink& s, std::size_t n);
  void track_lines(const std::shared_ptr<Sink>& s);
  void flush_lines(bool only_abandoned);

  const Post post_;
  const Log log_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  // Guarded by mu_.
  std::deque<std::shared_ptr<Sink>> ready_;  // sinks with queued chunks, each once, in turn
  std::vector<std::function<void()>> to_post_;
  std::map<std::string, std::weak_ptr<Target>> files_;  // by target_key
  std::uint64_t reopen_generation_ = 0;
  bool stopping_ = false;

  Counters totals_;

  // Writer thread only.
  std::vector<iovec> iov_;
  // Sinks holding unterminated lines, kept alive so that the lines are written even when the
  // watcher lets go of its sink without closing every pid.
  std::vector<std::shared_ptr<Sink>> with_lines_;

  std::thread thread_;
};

OutputWriter::OutputWriter(Post post, Log log)
    : impl_(std::make_unique<Impl>(std::move(post), std::move(log))) {
  ::tzset();  // localtime_r need not read TZ itself
  // Signals are for the loop thread (signalfd): the writer thread starts with all of them
  // blocked, which also turns SIGPIPE from a dead stdout reader into EPIPE.
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    impl_->thread_ = std::thread([impl = impl_.get()] { impl->run(); });
  } catch (...) {
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

OutputWriter::~OutputWriter() {
  {
    std::lock_guard lock(impl_->mu_);
    impl_->stopping_ = true;
  }
  impl_->wake_.notify_all();
  impl_->thread_.join();
}

std::shared_ptr<Target> OutputWriter::Impl::file_target(const conf::StreamConfig& cfg) {
  std::string key = target_key(cfg);
  std::lock_guard lock(mu_);
  std::erase_if(files_, [](const auto& entry) { return entry.second.expired(); });
  if (auto it = files_.find(key); it != files_.end())
    if (auto t = it->second.lock()) return t;
  Target::Kind kind = cfg.kind == conf::StreamKind::timed_rotating_file ? Target::Kind::timed
                      : cfg.kind == conf::StreamKind::watched_file      ? Target::Kind::watched
                                                                        : Target::Kind::file;
  auto t = std::make_shared<Target>(kind, cfg.filename);
  t->backup_count = std::max(cfg.backup_count, 0);
  if (kind == Target::Kind::file) t->max_bytes = cfg.max_bytes;
  if (kind == Target::Kind::timed) {
    t->timed = detail::parse_timed_rotation(cfg.rotate_when, cfg.rotate_interval, cfg.utc);
    t->bad_when = !t->timed;
  }
  files_[key] = t;
  return t;
}

std::shared_ptr<Sink> OutputWriter::open(const conf::StreamConfig& cfg, std::string watcher,
                                         std::string stream) {
  using K = conf::StreamKind;
  Sink::Mode mode = Sink::Mode::discard;
  std::shared_ptr<Target> target;
  switch (cfg.kind) {
    case K::inherit:
    case K::null:
      break;
    case K::stdout:
      mode = Sink::Mode::name_prefix;
      target = std::make_shared<Target>(Target::Kind::arbiter_stdout, "");
      target->fd = STDOUT_FILENO;
      break;
    case K::file:
    case K::timed_rotating_file:
    case K::watched_file:
      mode = cfg.time_format.empty() ? Sink::Mode::pass : Sink::Mode::time_prefix;
      target = impl_->file_target(cfg);
      break;
  }
  return std::make_shared<Sink>(mode, cfg, std::move(watcher), std::move(stream), std::move(target));
}

void OutputWriter::Impl::schedule(Sink& s) {
  if (s.scheduled_) return;
  s.scheduled_ = true;
  ready_.push_back(s.shared_from_this());
  wake_.notify_one();
}

bool OutputWriter::write(Sink& sink, pid_t pid, std::string_view bytes) {
  if (sink.mode_ == Sink::Mode::discard || bytes.empty()) return true;
  std::timespec at{};
  if (sink.mode_ == Sink::Mode::time_prefix) ::clock_gettime(CLOCK_REALTIME, &at);
  std::lock_guard lock(impl_->mu_);
  auto& q = sink.queue_;
  if (bytes.size() < kMergeBelow && !q.empty() && !q.back().eof && q.back().pid == pid &&
      q.back().bytes.size() + bytes.size() <= kMergeUpTo) {
    q.back().bytes.append(bytes);
  } else {
    q.push_back(Chunk{pid, false, std::string(bytes), at, nullptr});
  }
  sink.queued_bytes_ += bytes.size();
  impl_->schedule(sink);
  return sink.queued_bytes_ <= kHighWater;
}

void OutputWriter::on_drained(Sink& sink, std::function<void()> fn) {
  std::lock_guard lock(impl_->mu_);
  if (sink.queued_bytes_ < kHighWater / 2) {
    // Through the writer thread all the same: `post` is only ever called there.
    sink.drained_ = nullptr;
    impl_->to_post_.push_back(std::move(fn));
    impl_->wake_.notify_one();
  } else {
    sink.drained_ = std::move(fn);
  }
}

bool OutputWriter::close(Sink& sink, pid_t pid, std::function<void()> done) {
  std::lock_guard lock(impl_->mu_);
  // Nothing of this sink is queued or being written, and pass mode keeps no partial line:
  // the stream is done now, without two trips through the writer thread.
  bool idle = !sink.scheduled_ && sink.queue_.empty();
  if (sink.mode_ == Sink::Mode::discard || (sink.mode_ == Sink::Mode::pass && idle)) return true;
  sink.queue_.push_back(Chunk{pid, true, {}, {}, std::move(done)});
  impl_->schedule(sink);
  return false;
}

OutputStats OutputWriter::stats(const Sink& sink) const {
  return sink.counters_.load();
}

OutputStats OutputWriter::totals() const {
  return impl_->totals_.load();
}

void OutputWriter::reopen() {
  {
    std::lock_guard lock(impl_->mu_);
    ++impl_->reopen_generation_;
  }
  impl_->wake_.notify_one();
}

// --- the writer thread ---

void OutputWriter::Impl::run() {
  std::uint64_t generation = 0;
  std::vector<Chunk> batch;
  std::vector<std::function<void()>> done;
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] {
      return stopping_ || !ready_.empty() || !to_post_.empty() || generation != reopen_generation_;
    });
    if (!to_post_.empty()) {
      auto fns = std::exchange(to_post_, {});
      bool drop_them = stopping_;  // the loop is going away: completions are dropped
      lock.unlock();
      if (!drop_them)
        for (auto& fn : fns)
          if (fn) post_(std::move(fn));
      fns.clear();
      lock.lock();
      continue;
    }
    if (generation != reopen_generation_) {
      generation = reopen_generation_;
      std::vector<std::shared_ptr<Target>> files;
      for (auto& [key, weak] : files_)
        if (auto t = weak.lock()) files.push_back(std::move(t));
      lock.unlock();
      // Closed now rather than at the next write, so that a rotated-away file is released even
      // by a quiet watcher; the path is opened again on the next write.
      for (auto& t : files) close_file(*t);
      files.clear();
      lock.lock();
      continue;
    }
    if (ready_.empty()) {
      if (stopping_) break;
      continue;
    }

    std::shared_ptr<Sink> sink = std::move(ready_.front());
    ready_.pop_front();
    std::size_t bytes = 0;
    while (!sink->queue_.empty() && bytes < kBatchBytes) {
      bytes += sink->queue_.front().bytes.size();
      batch.push_back(std::move(sink->queue_.front()));
      sink->queue_.pop_front();
    }
    lock.unlock();
    process(*sink, batch, done);
    batch.clear();
    track_lines(sink);
    flush_lines(true);
    lock.lock();

    sink->queued_bytes_ -= bytes;
    for (auto& fn : done) to_post_.push_back(std::move(fn));
    done.clear();
    if (sink->drained_ && sink->queued_bytes_ < kHighWater / 2)
      to_post_.push_back(std::exchange(sink->drained_, nullptr));
    if (!sink->queue_.empty()) {
      ready_.push_back(std::move(sink));  // after the others: one busy sink does not starve them
    } else {
      sink->scheduled_ = false;
      // Perhaps the last reference (the watcher let go): its file is closed outside the lock.
      lock.unlock();
      sink.reset();
      lock.lock();
    }
  }
  lock.unlock();
  flush_lines(false);
}

void OutputWriter::Impl::track_lines(const std::shared_ptr<Sink>& s) {
  auto it = std::find(with_lines_.begin(), with_lines_.end(), s);
  if (s->lines_.empty() && it != with_lines_.end())
    with_lines_.erase(it);
  else if (!s->lines_.empty() && it == with_lines_.end())
    with_lines_.push_back(s);
}

// Ends the unterminated lines of every sink (at exit), or of the sinks nobody else holds any
// more: their watcher is gone and no close() will come.
void OutputWriter::Impl::flush_lines(bool only_abandoned) {
  std::erase_if(with_lines_, [&](const std::shared_ptr<Sink>& s) {
    if (only_abandoned && s.use_count() > 1) return false;
    std::string out;
    while (!s->lines_.empty()) end_line(*s, s->lines_.begin()->first, out);
    emit(*s, out);
    return true;
  });
}

void OutputWriter::Impl::process(Sink& s, std::vector<Chunk>& batch,
                                 std::vector<std::function<void()>>& done) {
  if (s.mode_ == Sink::Mode::pass) {
    std::vector<std::string_view> spans;
    spans.reserve(batch.size());
    for (auto& c : batch) {
      if (!c.eof) {
        spans.emplace_back(c.bytes);
        continue;
      }
      emit(s, spans);
      spans.clear();
      done.push_back(std::move(c.done));
    }
    emit(s, spans);
    return;
  }
  std::string out;
  for (auto& c : batch) {
    if (!c.eof) {
      add_lines(s, c, out);
    } else {
      end_line(s, c.pid, out);
      done.push_back(std::move(c.done));
    }
    if (out.size() >= kBatchBytes) emit(s, out);
  }
  emit(s, out);
}

void OutputWriter::Impl::add_lines(Sink& s, Chunk& c, std::string& out) {
  std::string_view data = c.bytes;
  auto& line = s.lines_[c.pid];
  while (!data.empty()) {
    auto nl = data.find('\n');
    if (nl == std::string_view::npos) {
      if (line.text.empty()) line.at = c.at;
      line.text.append(data);
      if (line.text.size() >= kMaxLine) end_line(s, c.pid, out);
      return;
    }
    if (line.text.empty()) {
      add_prefix(s, c.pid, c.at, out);
    } else {
      add_prefix(s, c.pid, line.at, out);
      out += line.text;
      line.text.clear();
    }
    out.append(data.substr(0, nl + 1));
    data.remove_prefix(nl + 1);
  }
  s.lines_.erase(c.pid);  // nothing left unterminated
}

void OutputWriter::Impl::end_line(Sink& s, pid_t pid, std::string& out) {
  auto it = s.lines_.find(pid);
  if (it == s.lines_.end()) return;
  if (!it->second.text.empty()) {
    add_prefix(s, pid, it->second.at, out);
    out += it->second.text;
    out += '\n';
  }
  s.lines_.erase(it);
}

void OutputWriter::Impl::add_prefix(Sink& s, pid_t pid, const std::timespec& at, std::string& out) {
  if (s.mode_ == Sink::Mode::name_prefix) {
    out += s.watcher_;
    out += '.';
    out += std::to_string(pid);
    out += " | ";
    return;
  }
  // Rendering the time is the costly part of a short line: once a second will do, unless the
  // format shows microseconds.
  if (at.tv_sec != s.cached_second_ || s.time_format_.find("%f") != std::string::npos) {
    s.cached_time_ = detail::format_time(s.time_format_, at, s.utc_);
    s.cached_second_ = at.tv_sec;
  }
  out += s.cached_time_;
  out += " [";
  out += std::to_string(pid);
  out += "] | ";
}

void OutputWriter::Impl::emit(Sink& s, std::string& out) {
  if (out.empty()) return;
  emit(s, std::vector<std::string_view>{out});
  out.clear();
}

namespace {

// How many bytes of `iov`, from the start, end with its last newline; 0 if there is none.
std::size_t end_of_last_line(const std::vector<iovec>& iov) {
  std::size_t before = 0;
  for (const auto& v : iov) before += v.iov_len;
  for (auto it = iov.rbegin(); it != iov.rend(); ++it) {
    before -= it->iov_len;
    if (auto* nl = static_cast<const char*>(::memrchr(it->iov_base, '\n', it->iov_len)))
      return before + static_cast<std::size_t>(nl - static_cast<const char*>(it->iov_base)) + 1;
  }
  return 0;
}

void truncate_iov(std::vector<iovec>& iov, std::size_t n) {
  std::size_t i = 0;
  for (; i < iov.size() && n > 0; ++i) {
    if (iov[i].iov_len >= n) {
      iov[i].iov_len = n;
      n = 0;
    } else {
      n -= iov[i].iov_len;
    }
  }
  iov.resize(i);
}

}  // namespace

// Writes `spans`, in order, to the sink's destination, rotating on the way as configured.
// Whatever cannot be written is dropped and counted.
void OutputWriter::Impl::emit(Sink& s, const std::vector<std::string_view>& spans) {
  std::size_t remaining = 0;
  for (auto sv : spans) remaining += sv.size();
  if (remaining == 0) return;
  Target& t = *s.target_;
  bool by_size = t.max_bytes > 0;
  std::size_t index = 0, offset = 0;  // the first byte not yet written
  while (remaining > 0) {
    if (!prepare(s, t)) {
      drop(s, remaining);
      return;
    }
    std::size_t limit = kBatchBytes;
    bool full = false;  // what is left does not fit in the file: rotate after this write
    if (by_size) {
      // Asked each time rather than counted: another sink or process may append to the file too.
      struct stat st {};
      if (::fstat(t.fd, &st) == 0) t.size = static_cast<std::uint64_t>(st.st_size);
      std::uint64_t room = t.size >= t.max_bytes ? 0 : t.max_bytes - t.size;
      if (remaining > room && room <= limit) {
        limit = static_cast<std::size_t>(room);
        full = true;
      }
    }
    iov_.clear();
    std::size_t n = 0;
    for (std::size_t i = index, off = offset; i < spans.size() && n < limit && iov_.size() < kMaxIov;
         ++i, off = 0) {
      std::size_t take = std::min(spans[i].size() - off, limit - n);
      if (take == 0) continue;
      iov_.push_back(iovec{const_cast<char*>(spans[i].data() + off), take});
      n += take;
    }
    if (full && n == limit) {
      // End the file at a line boundary when there is one; a single line longer than the
      // whole file is split, as it must be.
      if (std::size_t line_end = end_of_last_line(iov_); line_end > 0) {
        truncate_iov(iov_, line_end);
        n = line_end;
      } else if (t.size > 0) {
        iov_.clear();
        n = 0;
      }
    } else {
      full = false;
    }
    if (n > 0) {
      std::size_t written = write_all(s, t, n);
      remaining -= written;
      for (std::size_t left = written; left > 0;) {
        std::size_t avail = spans[index].size() - offset;
        if (left < avail) {
          offset += left;
          left = 0;
        } else {
          left -= avail;
          ++index;
          offset = 0;
        }
      }
      if (written < n) {
        drop(s, remaining);
        return;
      }
    }
    // A rotation that failed is not tried again for these bytes: they go to the full file.
    if (full && !rotate_by_size(s, t)) by_size = false;
  }
}

// Makes `t.fd` the file to write now: reopens a watched file that was moved or deleted,
// rotates a timed file that is due, opens a closed one. False when there is no file to write.
bool OutputWriter::Impl::prepare(Sink& s, Target& t) {
  if (t.kind == Target::Kind::arbiter_stdout) return true;
  if (t.kind == Target::Kind::watched && t.fd >= 0) {
    struct stat st {};
    if (::stat(t.path.c_str(), &st) != 0 || st.st_dev != t.dev || st.st_ino != t.ino) close_file(t);
  }
  if (t.bad_when && !t.bad_when_logged) {
    t.bad_when_logged = true;
    log_("cannot rotate '" + t.path + "' " + s.who() + ": unknown rotate_when");
  }
  if (t.timed) {
    std::time_t now = std::time(nullptr);
    if (t.rollover_at == 0) {
      // As Python does: a file left from before counts from its last change, so that a
      // restart still rotates yesterday's file.
      struct stat st {};
      t.rollover_at = detail::next_rollover(*t.timed, ::stat(t.path.c_str(), &st) == 0 ? st.st_mtime : now);
    }
    if (now >= t.rollover_at) rotate_by_time(s, t, now);
  }
  if (t.fd < 0) return open_file(s, t, false);
  return true;
}

bool OutputWriter::Impl::open_file(Sink& s, Target& t, bool truncate) {
  int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0);
  int fd;
  do {
    fd = ::open(t.path.c_str(), flags, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    fail_write(s, "cannot open '" + t.path + "' " + s.who() + ": " + error_text(errno));
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    t.dev = st.st_dev;
    t.ino = st.st_ino;
    t.size = static_cast<std::uint64_t>(st.st_size);
  }
  t.fd = fd;
  return true;
}

void OutputWriter::Impl::close_file(Target& t) {
  if (t.kind == Target::Kind::arbiter_stdout || t.fd < 0) return;
  ::close(t.fd);  // not retried on EINTR: on Linux the fd is gone either way
  t.fd = -1;
}

// Writes the first `n` bytes described by iov_ (which hold exactly n); returns how many were
// written, fewer only after a failure, which it has reported.
std::size_t OutputWriter::Impl::write_all(Sink& s, Target& t, std::size_t n) {
  std::size_t written = 0, first = 0;
  while (written < n) {
    ssize_t k = ::writev(t.fd, iov_.data() + first, static_cast<int>(iov_.size() - first));
    if (k < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {  // someone made our stdout non-blocking
        pollfd p{t.fd, POLLOUT, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      fail_write(s, "cannot write to " + s.where() + " " + s.who() + ": " + error_text(err));
      break;
    }
    if (k == 0) {
      fail_write(s, "cannot write to " + s.where() + " " + s.who() + ": nothing written");
      break;
    }
    written += static_cast<std::size_t>(k);
    for (auto left = static_cast<std::size_t>(k); left > 0;) {
      iovec& v = iov_[first];
      if (left >= v.iov_len) {
        left -= v.iov_len;
        ++first;
      } else {
        v.iov_base = static_cast<char*>(v.iov_base) + left;
        v.iov_len -= left;
        left = 0;
      }
    }
  }
  t.size += written;
  add(s.counters_.written, written);
  add(totals_.written, written);
  if (written == n && s.write_failing_) {
    s.write_failing_ = false;
    log_("writing to " + s.where() + " " + s.who() + " again, after dropping " +
         std::to_string(s.dropped_while_failing_) + " bytes");
    s.dropped_while_failing_ = 0;
  }
  return written;
}

// Python's RotatingFileHandler: file.(n-1) becomes file.n, ..., file becomes file.1. With no
// backups wanted, the file starts over (Python would let it grow forever). False if the file
// could not be set aside.
bool OutputWriter::Impl::rotate_by_size(Sink& s, Target& t) {
  close_file(t);
  if (t.backup_count == 0) {
    if (!open_file(s, t, true)) return false;
  } else {
    for (int i = t.backup_count - 1; i >= 1; --i)
      rename_file(s, t.path + "." + std::to_string(i), t.path + "." + std::to_string(i + 1));
    if (!rename_file(s, t.path, t.path + ".1")) return false;
  }
  add(s.counters_.rotations, 1);
  add(totals_.rotations, 1);
  s.rotate_failing_ = false;
  return true;
}

// Python's TimedRotatingFileHandler: the file becomes file.<start of its period>, and only the
// backup_count newest of those are kept.
void OutputWriter::Impl::rotate_by_time(Sink& s, Target& t, std::time_t now) {
  close_file(t);
  struct stat st {};
  bool exists = ::stat(t.path.c_str(), &st) == 0;
  if (exists && rename_file(s, t.path, t.path + "." + detail::rotated_suffix(*t.timed, t.rollover_at))) {
    add(s.counters_.rotations, 1);
    add(totals_.rotations, 1);
    s.rotate_failing_ = false;
    if (t.backup_count > 0) delete_old_backups(s, t);
  }
  std::time_t next = detail::next_rollover(*t.timed, now);
  while (next <= now) next += t.timed->interval;
  t.rollover_at = next;
}

void OutputWriter::Impl::delete_old_backups(Sink& s, Target& t) {
  auto slash = t.path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : t.path.substr(0, slash);
  std::string prefix = (slash == std::string::npos ? t.path : t.path.substr(slash + 1)) + ".";
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    fail_rotate(s, "cannot list '" + dir + "' " + s.who() + ": " + error_text(errno));
    return;
  }
  std::vector<std::string> backups;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name.starts_with(prefix) && detail::is_rotated_suffix(*t.timed, name.substr(prefix.size())))
      backups.emplace_back(name);
  }
  ::closedir(d);
  if (backups.size() <= static_cast<std::size_t>(t.backup_count)) return;
  std::sort(backups.begin(), backups.end());  // the suffixes sort as the times they name
  for (std::size_t i = 0; i + static_cast<std::size_t>(t.backup_count) < backups.size(); ++i) {
    std::string path = dir + "/" + backups[i];
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      fail_rotate(s, "cannot remove '" + path + "' " + s.who() + ": " + error_text(errno));
  }
}

// True when `from` was renamed, or was not there to rename.
bool OutputWriter::Impl::rename_file(Sink& s, const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) == 0 || errno == ENOENT) return true;
  fail_rotate(s, "cannot rename '" + from + "' to '" + to + "' " + s.who() + ": " + error_text(errno));
  return false;
}

// Counted each time, logged once until a write succeeds again: a full disk must not also fill
// the log with one line per chunk.
void OutputWriter::Impl::fail_write(Sink& s, std::string message) {
  add(s.counters_.errors, 1);
  add(totals_.errors, 1);
  if (s.write_failing_) return;
  s.write_failing_ = true;
  log_(std::move(message));
}

void OutputWriter::Impl::fail_rotate(Sink& s, std::string message) {
  add(s.counters_.errors, 1);
  add(totals_.errors, 1);
  if (s.rotate_failing_) return;
  s.rotate_failing_ = true;
  log_(std::move(message));
}

void OutputWriter::Impl::drop(Sink& s, std::size_t n) {
  add(s.counters_.dropped, n);
  add(totals_.dropped, n);
  s.dropped_while_failing_ += n;
}

// --- time arithmetic ---

namespace detail {

std::optional<TimedRotation> parse_timed_rotation(std::string_view when, int interval, bool utc) {
  std::string w;
  for (char c : when) w += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  TimedRotation r;
  r.utc = utc;
  std::time_t unit_seconds = 0;
  if (w == "S") {
    r.unit = TimedRotation::Unit::seconds;
    unit_seconds = 1;
    r.suffix = "%Y-%m-%d_%H-%M-%S";
  } else if (w == "M") {
    r.unit = TimedRotation::Unit::minutes;
    unit_seconds = 60;
    r.suffix = "%Y-%m-%d_%H-%M";
  } else if (w == "H") {
    r.unit = TimedRotation::Unit::hours;
    unit_seconds = 3600;
    r.suffix = "%Y-%m-%d_%H";
  } else if (w == "D" || w == "MIDNIGHT") {
    r.unit = w == "D" ? TimedRotation::Unit::days : TimedRotation::Unit::midnight;
    unit_seconds = 86400;
    r.suffix = "%Y-%m-%d";
  } else if (w.size() == 2 && w[0] == 'W' && w[1] >= '0' && w[1] <= '6') {
    r.unit = TimedRotation::Unit::weekday;
    r.weekday = w[1] - '0';
    unit_seconds = 7 * 86400;
    r.suffix = "%Y-%m-%d";
  } else {
    return std::nullopt;
  }
  r.interval = unit_seconds * std::max(interval, 1);
  return r;
}

std::time_t next_rollover(const TimedRotation& r, std::time_t now) {
  using Unit = TimedRotation::Unit;
  if (r.unit != Unit::midnight && r.unit != Unit::weekday) return now + r.interval;
  std::tm tm{};
  if (r.utc)
    ::gmtime_r(&now, &tm);
  else
    ::localtime_r(&now, &tm);
  int days = 1;  // to the coming midnight
  std::time_t period = 86400;
  if (r.unit == Unit::weekday) {
    int today = (tm.tm_wday + 6) % 7;  // Monday is 0, as for Python
    days += (r.weekday - today + 7) % 7;
    period = 7 * 86400;
  }
  // Python rotates at the next midnight whatever the interval; every `interval` days (weeks)
  // is what the option says.
  days += static_cast<int>((r.interval / period - 1) * (period / 86400));
  // Counted in calendar days, not seconds, so that a DST change in between moves nothing.
  tm.tm_mday += days;
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  tm.tm_isdst = -1;
  return r.utc ? ::timegm(&tm) : ::mktime(&tm);
}

std::string rotated_suffix(const TimedRotation& r, std::time_t rollover_at) {
  std::time_t t = rollover_at - r.interval;
  std::tm tm{};
  if (r.utc) {
    ::gmtime_r(&t, &tm);
  } else {
    ::localtime_r(&t, &tm);
    // Python's correction: across a DST change, `interval` seconds before a midnight is an
    // hour off it, perhaps on another day.
    std::tm then{};
    ::localtime_r(&rollover_at, &then);
    if (then.tm_isdst != tm.tm_isdst) {
      t += then.tm_isdst > 0 ? 3600 : -3600;
      ::localtime_r(&t, &tm);
    }
  }
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, r.suffix.c_str(), &tm);
  return std::string(buf, n);
}

bool is_rotated_suffix(const TimedRotation& r, std::string_view suffix) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t i = 0;
  const std::string& f = r.suffix;
  for (std::size_t k = 0; k < f.size(); ++k) {
    if (f[k] == '%' && k + 1 < f.size()) {
      int digits = f[++k] == 'Y' ? 4 : 2;
      for (int d = 0; d < digits; ++d, ++i)
        if (i >= suffix.size() || !digit(suffix[i])) return false;
    } else {
      if (i >= suffix.size() || suffix[i] != f[k]) return false;
      ++i;
    }
  }
  if (i == suffix.size()) return true;
  // Python also matches an extension (".gz" left by a compressor): (\.\w+)?
  if (suffix[i] != '.' || i + 1 == suffix.size()) return false;
  for (++i; i < suffix.size(); ++i)
    if (!std::isalnum(static_cast<unsigned char>(suffix[i])) && suffix[i] != '_') return false;
  return true;
}

std::string format_time(std::string_view format, const std::timespec& at, bool utc) {
  std::string f;
  f.reserve(format.size() + 8);
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 1 < format.size()) {
      if (format[i + 1] == 'f') {
        auto us = static_cast<unsigned long>(at.tv_nsec / 1000) % 1000000;
        for (unsigned long div = 100000; div > 0; div /= 10) f += static_cast<char>('0' + us / div % 10);
      } else {
        f += format.substr(i, 2);
      }
      ++i;
    } else {
      f += format[i];
    }
  }
  std::tm tm{};
  std::time_t s = at.tv_sec;
  if (utc)
    ::gmtime_r(&s, &tm);
  else
    ::localtime_r(&s, &tm);
  // strftime gives 0 both for "too small" and for an empty result: grow a few times, then
  // take it as empty.
  std::string out(std::max<std::size_t>(64, f.size() * 4), '\0');
  for (int tries = 0; tries < 4 && !f.empty(); ++tries, out.resize(out.size() * 4)) {
    if (std::size_t n = std::strftime(out.data(), out.size(), f.c_str(), &tm); n > 0) {
      out.resize(n);
      return out;
    }
  }
  return {};
}

}  // namespace detail

}  // namespace trapeze::watchers
