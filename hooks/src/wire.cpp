#include "trapeze/hooks/wire.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace trapeze::hooks::wire {
namespace {

using json = nlohmann::json;

std::string frame(const json& j) {
  std::string body = j.dump();
  if (body.size() > kMaxFrame) throw WireError(fmt::format("message of {} bytes is too big", body.size()));
  auto n = static_cast<std::uint32_t>(body.size());
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + body;
}

json parse(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw WireError("a message is not a JSON object");
  return j;
}

template <typename T>
T field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) throw WireError(fmt::format("a message lacks '{}'", key));
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw WireError(fmt::format("a message has a bad '{}'", key));
  }
}

const char* outcome_name(HookOutcome o) {
  switch (o) {
    case HookOutcome::proceed:
      return "proceed";
    case HookOutcome::veto:
      return "veto";
    case HookOutcome::error:
    case HookOutcome::timed_out:  // never sent: the arbiter decides timeouts
      return "error";
  }
  return "error";
}

}  // namespace

std::string encode(const ToHost& message) {
  if (std::holds_alternative<Cancel>(message)) return frame({{"cancel", true}});
  const auto& r = std::get<HostRequest>(message);
  return frame({{"library", r.library},
                {"symbol", r.symbol},
                {"hook_name", r.hook_name},
                {"watcher_name", r.watcher_name},
                {"pid", r.pid},
                {"signum", r.signum},
                {"exit_status", r.exit_status},
                {"watcher_options", r.watcher_options},
                {"hook_options", r.hook_options},
                {"timeout_ms", r.timeout.count()},
                {"check_only", r.check_only}});
}

std::string encode(const FromHost& message) {
  if (const auto* log = std::get_if<LogRecord>(&message))
    return frame({{"log", {{"level", log->level}, {"message", log->message}}}});
  if (const auto* answer = std::get_if<Answer>(&message))
    return frame({{"outcome", outcome_name(answer->outcome)}, {"error", answer->error}});
  return frame({{"load_error", std::get<LoadError>(message).message}});
}

ToHost decode_to_host(std::string_view body) {
  json j = parse(body);
  if (j.contains("cancel")) return Cancel{};
  HostRequest r;
  r.library = field<std::string>(j, "library");
  r.symbol = field<std::string>(j, "symbol");
  r.hook_name = field<std::string>(j, "hook_name");
  r.watcher_name = field<std::string>(j, "watcher_name");
  r.pid = field<std::int64_t>(j, "pid");
  r.signum = field<int>(j, "signum");
  r.exit_status = field<int>(j, "exit_status");
  r.watcher_options = field<Options>(j, "watcher_options");
  r.hook_options = field<Options>(j, "hook_options");
  r.timeout = std::chrono::milliseconds(field<std::int64_t>(j, "timeout_ms"));
  r.check_only = field<bool>(j, "check_only");
  return r;
}

FromHost decode_from_host(std::string_view body) {
  json j = parse(body);
  if (auto it = j.find("log"); it != j.end()) {
    if (!it->is_object()) throw WireError("a message has a bad 'log'");
    return LogRecord{field<int>(*it, "level"), field<std::string>(*it, "message")};
  }
  if (j.contains("load_error")) return LoadError{field<std::string>(j, "load_error")};
  auto outcome = field<std::string>(j, "outcome");
  Answer a;
  a.error = field<std::string>(j, "error");
  if (outcome == "proceed")
    a.outcome = HookOutcome::proceed;
  else if (outcome == "veto")
    a.outcome = HookOutcome::veto;
  else if (outcome == "error")
    a.outcome = HookOutcome::error;
  else
    throw WireError(fmt::format("a message has an unknown outcome '{}'", outcome));
  return a;
}

std::optional<std::string> FrameReader::next() {
  if (buffer_.size() < 4) return std::nullopt;
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i)
    n |= static_cast<std::uint32_t>(static_cast<unsigned char>(buffer_[static_cast<std::size_t>(i)]))
         << (8 * i);
  if (n > kMaxFrame) throw WireError(fmt::format("a frame of {} bytes is too big", n));
  if (buffer_.size() < 4 + std::size_t{n}) return std::nullopt;
  std::string body = buffer_.substr(4, n);
  buffer_.erase(0, 4 + std::size_t{n});
  return body;
}

}  // namespace trapeze::hooks::wire
