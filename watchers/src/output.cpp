// The writer thread and circus's stream classes. The loop only copies bytes into a sink's
// queue; everything that may block (open, write, rename, stat) happens here.
#include "trapeze/watchers/output.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

namespace trapeze::watchers {
namespace {

using conf::StreamKind;

// One queued item: bytes of a pid, or the end of a pid's stream.
struct Item {
  pid_t pid = 0;
  std::string bytes;
  std::function<void()> done;  // set for a close
};

bool writes_somewhere(StreamKind k) {
  return k != StreamKind::inherit && k != StreamKind::null;
}

std::string format_time(const std::string& format, std::time_t t, bool utc) {
  std::tm tm{};
  if (utc)
    gmtime_r(&t, &tm);
  else
    localtime_r(&t, &tm);
  char buf[256];
  std::size_t n = std::strftime(buf, sizeof buf, format.c_str(), &tm);
  return std::string(buf, n);
}

}  // namespace

class Sink : public std::enable_shared_from_this<Sink> {
 public:
  Sink(const conf::StreamConfig& cfg, std::string watcher, std::string stream)
      : cfg_(cfg), watcher_(std::move(watcher)), stream_(std::move(stream)) {}

  // Loop side, under the writer's mutex.
  std::deque<Item> queue;
  std::size_t queued_bytes = 0;
  std::function<void()> on_drained;

  // Counters, read by the loop.
  std::atomic<std::uint64_t> written{0}, dropped{0}, errors{0}, rotations{0};

  // Writer side only.
  void write(std::string_view bytes, pid_t pid);
  void end_line(pid_t pid);
  void reopen() { close_file(); }
  void close_file() {
    if (fd_ >= 0 && fd_ != 1) ::close(fd_);
    fd_ = -1;
  }
  ~Sink() { close_file(); }

  const conf::StreamConfig& config() const { return cfg_; }
  OutputWriter::Log log;

 private:
  bool prefixed() const { return cfg_.kind == StreamKind::stdout || !cfg_.time_format.empty(); }
  std::string prefix(pid_t pid) const {
    if (cfg_.kind == StreamKind::stdout) return fmt::format("{}.{} | ", watcher_, pid);
    return fmt::format("{} [{}] | ", format_time(cfg_.time_format, std::time(nullptr), cfg_.utc), pid);
  }
  bool ensure_open();
  void maybe_rotate(std::size_t incoming);
  void rotate_by_size();
  void rotate_by_time();
  std::time_t next_rollover(std::time_t from) const;
  void put(std::string_view bytes);
  void fail(const std::string& what, int error, std::size_t lost);

  conf::StreamConfig cfg_;
  std::string watcher_, stream_;
  int fd_ = -1;
  std::uint64_t size_ = 0;       // of the open file
  std::time_t rollover_at_ = 0;  // timed rotation
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  bool failing_ = false;                  // log a burst of errors once
  std::map<pid_t, std::string> partial_;  // unterminated last line per pid (prefixed sinks)
};

bool Sink::ensure_open() {
  if (cfg_.kind == StreamKind::stdout) {
    fd_ = 1;
    return true;
  }
  if (cfg_.kind == StreamKind::watched_file && fd_ >= 0) {
    // logrotate moved or removed the file: write to a new one at the same name.
    struct stat st {};
    if (::stat(cfg_.filename.c_str(), &st) < 0 || st.st_dev != dev_ || st.st_ino != ino_) close_file();
  }
  if (fd_ >= 0) return true;
  fd_ = ::open(cfg_.filename.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return false;
  struct stat st {};
  if (fstat(fd_, &st) == 0) {
    size_ = static_cast<std::uint64_t>(st.st_size);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
  }
  if (cfg_.kind == StreamKind::timed_rotating_file && rollover_at_ == 0)
    rollover_at_ = next_rollover(st.st_size > 0 ? st.st_mtime : std::time(nullptr));
  return true;
}

void Sink::fail(const std::string& what, int error, std::size_t lost) {
  ++errors;
  dropped += lost;
  if (!failing_ && log)
    log(fmt::format("watcher {} {}: {}: {}", watcher_, stream_, what, std::strerror(error)));
  failing_ = true;
}

void Sink::put(std::string_view bytes) {
  if (bytes.empty()) return;
  if (!ensure_open()) return fail(fmt::format("cannot open '{}'", cfg_.filename), errno, bytes.size());
  maybe_rotate(bytes.size());
  if (fd_ < 0 && !ensure_open())
    return fail(fmt::format("cannot open '{}'", cfg_.filename), errno, bytes.size());
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fail(fmt::format("cannot write to '{}'", cfg_.kind == StreamKind::stdout ? "stdout" : cfg_.filename),
           n < 0 ? errno : ENOSPC, bytes.size());
      return;
    }
    written += static_cast<std::uint64_t>(n);
    size_ += static_cast<std::uint64_t>(n);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  failing_ = false;
}

void Sink::write(std::string_view bytes, pid_t pid) {
  if (!writes_somewhere(cfg_.kind)) return;
  if (!prefixed()) return put(bytes);
  // Whole lines only, each with its prefix; what follows the last newline waits for the rest.
  std::string out;
  std::string& partial = partial_[pid];
  while (!bytes.empty()) {
    auto nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      partial.append(bytes);
      break;
    }
    out += prefix(pid);
    out += partial;
    partial.clear();
    out.append(bytes.substr(0, nl + 1));
    bytes.remove_prefix(nl + 1);
  }
  if (partial.empty()) partial_.erase(pid);
  put(out);
}

void Sink::end_line(pid_t pid) {
  auto it = partial_.find(pid);
  if (it == partial_.end()) return;
  std::string line = prefix(pid) + it->second + "\n";
  partial_.erase(it);
  put(line);
}

void Sink::maybe_rotate(std::size_t incoming) {
  if (cfg_.kind == StreamKind::file && cfg_.max_bytes > 0 && size_ > 0 && size_ + incoming > cfg_.max_bytes)
    rotate_by_size();
  else if (cfg_.kind == StreamKind::timed_rotating_file && std::time(nullptr) >= rollover_at_)
    rotate_by_time();
}

// Python's RotatingFileHandler: file.N-1 -> file.N, ..., file -> file.1.
void Sink::rotate_by_size() {
  close_file();
  if (cfg_.backup_count > 0) {
    for (int i = cfg_.backup_count - 1; i >= 1; --i) {
      auto from = fmt::format("{}.{}", cfg_.filename, i);
      auto to = fmt::format("{}.{}", cfg_.filename, i + 1);
      if (::access(from.c_str(), F_OK) == 0) ::rename(from.c_str(), to.c_str());
    }
    if (::rename(cfg_.filename.c_str(), fmt::format("{}.1", cfg_.filename).c_str()) < 0)
      fail(fmt::format("cannot rotate '{}'", cfg_.filename), errno, 0);
  } else if (::truncate(cfg_.filename.c_str(), 0) < 0) {
    fail(fmt::format("cannot truncate '{}'", cfg_.filename), errno, 0);
  }
  ++rotations;
  size_ = 0;
  ensure_open();
}

std::time_t Sink::next_rollover(std::time_t from) const {
  const std::string& when = cfg_.rotate_when;
  long interval = std::max(cfg_.rotate_interval, 1);
  if (when == "S") return from + interval;
  if (when == "M") return from + 60 * interval;
  if (when == "H") return from + 3600 * interval;
  if (when == "D") return from + 86400 * interval;
  // midnight and W0-W6: the next midnight (of that weekday), in local time or UTC.
  std::tm tm{};
  if (cfg_.utc)
    gmtime_r(&from, &tm);
  else
    localtime_r(&from, &tm);
  int days = 1;
  if (when.size() == 2 && when[0] == 'W') {
    int wanted = when[1] - '0';        // 0 = Monday
    int today = (tm.tm_wday + 6) % 7;  // tm_wday: 0 = Sunday
    days = (wanted - today + 7) % 7;
    if (days == 0) days = 7;
  }
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  tm.tm_mday += days;
  tm.tm_isdst = -1;
  return cfg_.utc ? timegm(&tm) : mktime(&tm);
}

// Python's TimedRotatingFileHandler: file -> file.<time of the period that ended>.
void Sink::rotate_by_time() {
  const std::string& when = cfg_.rotate_when;
  const char* suffix = when == "S"   ? "%Y-%m-%d_%H-%M-%S"
                       : when == "M" ? "%Y-%m-%d_%H-%M"
                       : when == "H" ? "%Y-%m-%d_%H"
                                     : "%Y-%m-%d";
  long interval = std::max(cfg_.rotate_interval, 1);
  long period = when == "S"   ? interval
                : when == "M" ? 60 * interval
                : when == "H" ? 3600 * interval
                              : 86400 * interval;
  std::time_t started = rollover_at_ - period;
  close_file();
  std::string target = cfg_.filename + "." + format_time(suffix, started, cfg_.utc);
  if (::rename(cfg_.filename.c_str(), target.c_str()) < 0 && errno != ENOENT)
    fail(fmt::format("cannot rotate '{}'", cfg_.filename), errno, 0);
  ++rotations;
  if (cfg_.backup_count > 0) {
    // Keep the newest backup_count: the suffixes sort by time.
    std::string dir = ".", base = cfg_.filename;
    if (auto slash = cfg_.filename.rfind('/'); slash != std::string::npos) {
      dir = cfg_.filename.substr(0, slash);
      base = cfg_.filename.substr(slash + 1);
    }
    std::vector<std::string> backups;
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name.size() > base.size() + 1 && name.compare(0, base.size() + 1, base + ".") == 0)
          backups.push_back(dir + "/" + name);
      }
      closedir(d);
    }
    std::sort(backups.begin(), backups.end());
    for (std::size_t i = 0; i + static_cast<std::size_t>(cfg_.backup_count) < backups.size(); ++i)
      ::unlink(backups[i].c_str());
  }
  std::time_t now = std::time(nullptr);
  rollover_at_ = next_rollover(rollover_at_);
  while (rollover_at_ <= now) rollover_at_ = next_rollover(rollover_at_);
  ensure_open();
}

struct OutputWriter::Impl {
  Post post;
  Log log;
  std::mutex mutex;
  std::condition_variable wake;
  bool quitting = false;
  bool reopen_all = false;
  std::list<std::weak_ptr<Sink>> sinks;
  std::deque<std::shared_ptr<Sink>> ready;  // sinks with queued items, in arrival order
  std::thread thread;

  void run();
};

void OutputWriter::Impl::run() {
  std::unique_lock lock(mutex);
  for (;;) {
    wake.wait(lock, [&] { return quitting || !ready.empty() || reopen_all; });
    if (reopen_all) {
      reopen_all = false;
      for (auto& weak : sinks)
        if (auto s = weak.lock()) s->reopen();  // the fd is the writer's: safe under our lock
    }
    if (ready.empty()) {
      if (quitting) return;
      continue;
    }
    std::shared_ptr<Sink> sink = std::move(ready.front());
    ready.pop_front();
    std::deque<Item> batch;
    batch.swap(sink->queue);
    std::size_t bytes = sink->queued_bytes;
    lock.unlock();

    // Coalesce consecutive chunks of one pid: one write per batch, not per read().
    std::string joined;
    pid_t joined_pid = 0;
    std::vector<std::function<void()>> done;
    auto flush_joined = [&] {
      if (!joined.empty()) sink->write(joined, joined_pid);
      joined.clear();
    };
    for (auto& item : batch) {
      if (item.done) {
        flush_joined();
        sink->end_line(item.pid);
        done.push_back(std::move(item.done));
        continue;
      }
      if (item.pid != joined_pid) flush_joined();
      joined_pid = item.pid;
      if (joined.empty())
        joined = std::move(item.bytes);
      else
        joined += item.bytes;
    }
    flush_joined();

    lock.lock();
    sink->queued_bytes -= bytes;
    std::function<void()> drained;
    if (sink->on_drained && sink->queued_bytes < kHighWater / 2) drained = std::move(sink->on_drained);
    sink->on_drained = nullptr;
    if (drained) post(std::move(drained));
    for (auto& d : done) post(std::move(d));
  }
}

OutputWriter::OutputWriter(Post post, Log log) : impl_(std::make_unique<Impl>()) {
  impl_->post = std::move(post);
  impl_->log = std::move(log);
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

OutputWriter::~OutputWriter() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->quitting = true;
    impl_->post = [](std::function<void()>) {};  // the loop is going: completions are dropped
  }
  impl_->wake.notify_one();
  impl_->thread.join();
}

std::shared_ptr<Sink> OutputWriter::open(const conf::StreamConfig& cfg, std::string watcher,
                                         std::string stream) {
  auto sink = std::make_shared<Sink>(cfg, std::move(watcher), std::move(stream));
  sink->log = impl_->log;
  std::lock_guard lock(impl_->mutex);
  impl_->sinks.remove_if([](const std::weak_ptr<Sink>& w) { return w.expired(); });
  impl_->sinks.push_back(sink);
  return sink;
}

bool OutputWriter::write(Sink& sink, pid_t pid, std::string_view bytes) {
  if (!writes_somewhere(sink.config().kind)) return true;  // discarded: no queue, no thread
  bool above;
  {
    std::lock_guard lock(impl_->mutex);
    if (sink.queue.empty()) impl_->ready.push_back(sink.shared_from_this());
    sink.queue.push_back(Item{pid, std::string(bytes), nullptr});
    sink.queued_bytes += bytes.size();
    above = sink.queued_bytes > kHighWater;
  }
  impl_->wake.notify_one();
  return !above;
}

void OutputWriter::on_drained(Sink& sink, std::function<void()> fn) {
  std::lock_guard lock(impl_->mutex);
  if (sink.queued_bytes < kHighWater / 2)
    impl_->post(std::move(fn));
  else
    sink.on_drained = std::move(fn);
}

void OutputWriter::close(Sink& sink, pid_t pid, std::function<void()> done) {
  if (!writes_somewhere(sink.config().kind)) {
    impl_->post(std::move(done));
    return;
  }
  {
    std::lock_guard lock(impl_->mutex);
    if (sink.queue.empty()) impl_->ready.push_back(sink.shared_from_this());
    sink.queue.push_back(Item{pid, {}, std::move(done)});
  }
  impl_->wake.notify_one();
}

OutputStats OutputWriter::stats(const Sink& sink) const {
  return {sink.written.load(), sink.dropped.load(), sink.errors.load(), sink.rotations.load()};
}

OutputStats OutputWriter::totals() const {
  OutputStats t;
  std::lock_guard lock(impl_->mutex);
  for (auto& weak : impl_->sinks)
    if (auto s = weak.lock()) {
      auto one = stats(*s);
      t.written_bytes += one.written_bytes;
      t.dropped_bytes += one.dropped_bytes;
      t.write_errors += one.write_errors;
      t.rotations += one.rotations;
    }
  return t;
}

void OutputWriter::reopen() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->reopen_all = true;
  }
  impl_->wake.notify_one();
}

}  // namespace trapeze::watchers
