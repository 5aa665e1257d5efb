#include "trapeze/juju/queue.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace trapeze::juju {
namespace {

using nlohmann::json;
constexpr int kFormatVersion = 1;
// The largest id a file may hold: far past any queue's life, and below 2^64 - 1, so the next
// id never wraps to 0 (a pushed entry whose id is not above the last one makes the file
// refused at the next start).
constexpr std::uint64_t kMaxId = std::numeric_limits<std::int64_t>::max();

[[noreturn]] void fail(const std::string& path, std::string_view what) {
  throw QueueError(fmt::format("dispatch queue '{}': {}", path, what));
}

/// Writes all of `data` to `fd`; false with errno set on failure.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

Dispatch entry_from_json(const json& j, const std::string& path, std::size_t index) {
  auto bad = [&](std::string_view why) { fail(path, fmt::format("entry {}: {}", index, why)); };
  if (!j.is_object()) bad("not an object");
  auto str = [&](const char* key, bool required) -> std::string {
    auto it = j.find(key);
    if (it == j.end()) {
      if (required) bad(fmt::format("'{}' is missing", key));
      return {};
    }
    if (!it->is_string()) bad(fmt::format("'{}' must be a string", key));
    return it->get<std::string>();
  };
  Dispatch d;
  auto id = j.find("id");
  if (id == j.end() || !id->is_number_unsigned() || id->get<std::uint64_t>() > kMaxId)
    bad("'id' must be a positive integer");
  d.id = id->get<std::uint64_t>();
  d.event = str("event", true);
  if (d.event.empty()) bad("'event' is empty");
  d.workload = str("workload", true);
  d.requested_at = str("requested_at", true);
  d.executed_at = str("executed_at", false);
  auto attempt = j.find("attempt");
  if (attempt == j.end() || !attempt->is_number_unsigned() || attempt->get<std::uint64_t>() > 1000000)
    bad("'attempt' must be a count");
  d.attempt = attempt->get<int>();
  if (auto env = j.find("env"); env != j.end()) {
    if (!env->is_object()) bad("'env' must be an object");
    for (const auto& [k, v] : env->items()) {
      if (!v.is_string()) bad(fmt::format("env '{}' must be a string", k));
      d.env[k] = v.get<std::string>();
    }
  }
  return d;
}

json entry_to_json(const Dispatch& d) {
  json j = {{"id", d.id},
            {"event", d.event},
            {"workload", d.workload},
            {"env", d.env},
            {"requested_at", d.requested_at},
            {"attempt", d.attempt}};
  if (!d.executed_at.empty()) j["executed_at"] = d.executed_at;
  return j;
}

}  // namespace

std::string utc_iso8601(Clock::time_point t) {
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros % 1000000);
}

DispatchQueue::DispatchQueue(std::string path) : path_(std::move(path)) {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec) && !ec) return;
  std::ifstream in(path_, std::ios::binary);
  if (!in) fail(path_, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) fail(path_, "not a JSON object");
  auto version = doc.find("version");
  if (version == doc.end() || *version != kFormatVersion)
    fail(path_, fmt::format("format version {} is not {}", version == doc.end() ? "(none)" : version->dump(),
                            kFormatVersion));
  auto entries = doc.find("entries");
  if (entries == doc.end() || !entries->is_array()) fail(path_, "'entries' must be an array");
  for (std::size_t i = 0; i < entries->size(); ++i) {
    Dispatch d = entry_from_json((*entries)[i], path_, i);
    if (!entries_.empty() && d.id <= entries_.back().id)
      fail(path_, fmt::format("entry {}: ids out of order", i));
    entries_.push_back(std::move(d));
  }
  auto next = doc.find("next_id");
  if (next == doc.end() || !next->is_number_unsigned() || next->get<std::uint64_t>() > kMaxId)
    fail(path_, "'next_id' must be a positive integer");
  next_id_ = std::max(next->get<std::uint64_t>(), entries_.empty() ? 1 : entries_.back().id + 1);
}

bool DispatchQueue::push(std::string event, std::string workload, std::map<std::string, std::string> env,
                         Clock::time_point now) {
  Dispatch d;
  d.event = std::move(event);
  d.workload = std::move(workload);
  d.env = std::move(env);
  if (!entries_.empty() && entries_.back().attempt == 0 && entries_.back().same_request(d)) return false;
  d.id = next_id_;
  d.requested_at = utc_iso8601(now);
  entries_.push_back(std::move(d));
  ++next_id_;
  try {
    save();
  } catch (...) {
    entries_.pop_back();  // not on disk: not queued
    --next_id_;
    throw;
  }
  return true;
}

void DispatchQueue::start_head(Clock::time_point now) {
  if (entries_.empty()) return;
  ++entries_.front().attempt;
  entries_.front().executed_at = utc_iso8601(now);
  save();
}

void DispatchQueue::pop_head() {
  if (entries_.empty()) return;
  entries_.pop_front();
  save();
}

void DispatchQueue::save() const {
  json doc = {{"version", kFormatVersion}, {"next_id", next_id_}, {"entries", json::array()}};
  for (const auto& d : entries_) doc["entries"].push_back(entry_to_json(d));
  std::string text = doc.dump(1) + "\n";

  std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail(path_, fmt::format("cannot create '{}': {}", tmp, std::strerror(errno)));
  if (!write_all(fd, text) || ::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(path_, fmt::format("cannot write '{}': {}", tmp, std::strerror(err)));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(path_, fmt::format("cannot rename '{}': {}", tmp, std::strerror(err)));
  }
  // The rename is durable only once the directory is.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) {
    int err = errno;
    if (dfd >= 0) ::close(dfd);
    fail(path_, fmt::format("cannot sync the directory: {}", std::strerror(err)));
  }
  ::close(dfd);
}

}  // namespace trapeze::juju
