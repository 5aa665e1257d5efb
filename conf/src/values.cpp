#include "values.hpp"

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "text.hpp"

namespace trapeze::conf::detail {
namespace {

struct SignalName {
  const char* name;
  int number;
};
constexpr SignalName kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},     {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},   {"FPE", SIGFPE},     {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},     {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},   {"ALRM", SIGALRM},
    {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"POLL", SIGPOLL}, {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

/// Python's int(): optional sign, digits, '_' between digits, surrounding blanks.
std::optional<long long> parse_int(std::string_view text) {
  text = trim(text);
  std::string digits;
  std::size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) digits += text[i++];
  if (i == text.size()) return std::nullopt;
  for (; i < text.size(); ++i) {
    if (text[i] >= '0' && text[i] <= '9') {
      digits += text[i];
    } else if (text[i] == '_' && i > 0 && i + 1 < text.size() &&
               std::isdigit(static_cast<unsigned char>(text[i + 1]))) {
      continue;
    } else {
      return std::nullopt;
    }
  }
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(digits.c_str(), &end, 10);
  if (errno == ERANGE || *end != '\0') return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view text) {
  std::string s(trim(text));
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (errno == ERANGE || *end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string format_number(double v) {
  return v == std::floor(v) && std::fabs(v) < 1e15 ? fmt::format("{}", static_cast<long long>(v))
                                                   : fmt::format("{}", v);
}

}  // namespace

std::string describe(const RawScalar& v) {
  if (auto* s = std::get_if<std::string>(&v)) return quote(*s);
  if (auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) return format_number(*d);
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return "an array";
}

namespace {

/// Milliseconds as a Duration, or nothing past what one holds. 9e15 ms (285 000 years) is far
/// below 2^63 and exact in a double; llround of a larger value gave a negative duration.
std::optional<Duration> to_duration(double ms) {
  if (!std::isfinite(ms) || ms < 0 || ms > 9e15) return std::nullopt;
  return Duration(static_cast<Duration::rep>(std::llround(ms)));
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  text = trim(text);
  if (auto plain = parse_double(text)) return to_duration(*plain * 1000);
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    auto number = parse_double(text.substr(start, i - start));
    if (!number) return std::nullopt;
    std::size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    double scale = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60000 : unit == "h" ? 3600000 : -1;
    if (scale < 0) return std::nullopt;
    total_ms += *number * scale;
  }
  return to_duration(total_ms);
}

std::string format_duration(Duration d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return fmt::format("{}ms", ms);
  auto s = ms / 1000;
  std::string out;
  if (s >= 3600 && s % 60 == 0) {
    out += fmt::format("{}h", s / 3600);
    s %= 3600;
  }
  if (s >= 60) {
    out += fmt::format("{}m", s / 60);
    s %= 60;
  }
  if (s > 0) out += fmt::format("{}s", s);
  return out;
}

std::optional<int> parse_signal(std::string_view text) {
  text = trim(text);
  if (auto n = parse_int(text)) {
    if (*n <= 0 || *n > SIGRTMAX) return std::nullopt;
    return static_cast<int>(*n);
  }
  std::string name = lower(text);
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name.starts_with("SIG")) name.erase(0, 3);
  int offset = 0;
  if (auto plus = name.find('+'); plus != std::string::npos) {
    auto n = parse_int(std::string_view(name).substr(plus + 1));
    if (!n || *n < 0) return std::nullopt;
    offset = static_cast<int>(*n);
    name.erase(plus);
  }
  int base = 0;
  if (name == "RTMIN") base = SIGRTMIN;
  if (name == "RTMAX") base = SIGRTMAX;
  for (const auto& s : kSignals)
    if (name == s.name) base = s.number;
  if (base == 0 || base + offset > SIGRTMAX) return std::nullopt;
  return base + offset;
}

std::string signal_name(int signum) {
  for (const auto& s : kSignals)
    if (s.number == signum) return std::string("SIG") + s.name;
  if (signum >= SIGRTMIN && signum <= SIGRTMAX)
    return signum == SIGRTMIN ? "SIGRTMIN" : fmt::format("SIGRTMIN+{}", signum - SIGRTMIN);
  return std::to_string(signum);
}

void Values::error(const Location& where, std::string key, std::string message) {
  out_.push_back({Severity::error, where, std::move(key), std::move(message)});
}

void Values::warning(const Location& where, std::string key, std::string message) {
  out_.push_back({Severity::warning, where, std::move(key), std::move(message)});
}

std::optional<std::string> Values::text_of(const RawEntry& e, const char* expected) {
  if (auto* s = std::get_if<std::string>(&e.value)) return *s;
  error(e.where, e.key, fmt::format("expected {}, got {}", expected, describe(e.value)));
  return std::nullopt;
}

std::optional<std::string> Values::string(const RawEntry& e) {
  return text_of(e, "a string");
}

std::optional<bool> Values::boolean(const RawEntry& e) {
  if (auto* b = std::get_if<bool>(&e.value)) return *b;
  auto text = typed_ ? std::nullopt : text_of(e, "true or false");
  if (!text) {
    if (typed_) error(e.where, e.key, fmt::format("expected true or false, got {}", describe(e.value)));
    return std::nullopt;
  }
  if (!text) return std::nullopt;
  std::string v = lower(trim(*text));
  if (v == "true" || v == "yes" || v == "on" || v == "1") return true;
  if (v == "false" || v == "no" || v == "off" || v == "0") return false;
  error(e.where, e.key, fmt::format("expected true or false, got {}", quote(*text)));
  return std::nullopt;
}

std::optional<long long> Values::integer(const RawEntry& e, long long min, long long max) {
  std::optional<long long> v;
  if (auto* i = std::get_if<std::int64_t>(&e.value)) {
    v = *i;
  } else if (auto* s = std::get_if<std::string>(&e.value); s && !typed_) {
    v = parse_int(*s);
  }
  if (!v) {
    error(e.where, e.key, fmt::format("expected an integer, got {}", describe(e.value)));
    return std::nullopt;
  }
  if (*v < min || *v > max) {
    error(e.where, e.key,
          max == std::numeric_limits<long long>::max()
              ? fmt::format("must be at least {}, got {}", min, *v)
              : fmt::format("must be between {} and {}, got {}", min, max, *v));
    return std::nullopt;
  }
  return v;
}

std::optional<double> Values::number(const RawEntry& e, double min, double max) {
  std::optional<double> v;
  if (auto* i = std::get_if<std::int64_t>(&e.value)) v = static_cast<double>(*i);
  if (auto* d = std::get_if<double>(&e.value)) v = *d;
  if (auto* s = std::get_if<std::string>(&e.value); s && !typed_) v = parse_double(*s);
  if (!v) {
    error(e.where, e.key, fmt::format("expected a number, got {}", describe(e.value)));
    return std::nullopt;
  }
  if (*v < min || *v > max) {
    error(e.where, e.key,
          fmt::format("must be between {} and {}, got {}", format_number(min), format_number(max),
                      format_number(*v)));
    return std::nullopt;
  }
  return v;
}

std::optional<Duration> Values::duration(const RawEntry& e) {
  std::optional<Duration> d;
  if (auto* i = std::get_if<std::int64_t>(&e.value); i && *i >= 0) d = Duration(*i * 1000);
  if (auto* f = std::get_if<double>(&e.value); f && *f >= 0) d = Duration(std::llround(*f * 1000));
  if (auto* s = std::get_if<std::string>(&e.value)) d = parse_duration(*s);
  if (!d)
    error(e.where, e.key,
          fmt::format("expected a duration such as 500ms, 30s or 2m (a bare number is seconds), got {}",
                      describe(e.value)));
  return d;
}

std::optional<int> Values::signal(const RawEntry& e) {
  std::optional<int> s;
  if (auto* i = std::get_if<std::int64_t>(&e.value); i && *i > 0 && *i <= SIGRTMAX) s = static_cast<int>(*i);
  if (auto* t = std::get_if<std::string>(&e.value)) s = parse_signal(*t);
  if (!s)
    error(e.where, e.key,
          fmt::format("expected a signal such as TERM, SIGINT or 15, got {}", describe(e.value)));
  return s;
}

std::optional<mode_t> Values::umask(const RawEntry& e) {
  std::optional<long long> v;
  if (auto* i = std::get_if<std::int64_t>(&e.value)) v = *i;
  if (auto* s = std::get_if<std::string>(&e.value)) {
    std::string t(trim(*s));
    if (!t.empty() && t.find_first_not_of("01234567") == std::string::npos)
      v = std::strtoll(t.c_str(), nullptr, 8);
  }
  if (!v || *v < 0 || *v > 0777) {
    error(e.where, e.key,
          fmt::format("expected an octal mode between 000 and 777, got {}", describe(e.value)));
    return std::nullopt;
  }
  return static_cast<mode_t>(*v);
}

std::optional<std::vector<std::string>> Values::list(const RawEntry& e) {
  if (auto* l = std::get_if<std::vector<std::string>>(&e.value)) return *l;
  auto text = text_of(e, "a list");
  if (!text) return std::nullopt;
  std::vector<std::string> out;
  if (trim(*text).empty()) return out;
  for (auto& part : split(*text, ',')) {
    if (part.empty()) {
      error(e.where, e.key, fmt::format("an empty item in the list {}", quote(*text)));
      return std::nullopt;
    }
    out.push_back(part);
  }
  return out;
}

std::optional<std::size_t> Values::choice(const RawEntry& e, const std::vector<std::string>& choices) {
  auto text = string(e);
  if (!text) return std::nullopt;
  for (std::size_t i = 0; i < choices.size(); ++i)
    if (lower(trim(*text)) == lower(choices[i])) return i;
  std::string all;
  for (std::size_t i = 0; i < choices.size(); ++i)
    all += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
  error(e.where, e.key, fmt::format("expected {}, got {}", all, quote(*text)));
  return std::nullopt;
}

}  // namespace trapeze::conf::detail
