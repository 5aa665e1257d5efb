// Typed reading of one raw value. Each function returns nullopt after recording an error
// that names the value's location and key, so callers just skip the assignment.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "raw.hpp"

namespace trapeze::conf::detail {

class Values {
 public:
  /// `typed`: the source has typed values (TOML), so a string is no integer, number or boolean.
  Values(std::vector<Diagnostic>& out, bool typed) : out_(out), typed_(typed) {}

  std::optional<std::string> string(const RawEntry& e);
  std::optional<bool> boolean(const RawEntry& e);
  std::optional<long long> integer(const RawEntry& e, long long min, long long max);
  std::optional<double> number(const RawEntry& e, double min, double max);
  /// "500ms", "30s", "2m", "1h", "1m30s"; a bare number is seconds (circus's INI values).
  std::optional<Duration> duration(const RawEntry& e);
  /// A number, a name with or without SIG (any case), or SIGRTMIN+N.
  std::optional<int> signal(const RawEntry& e);
  /// Octal digits as a string ("022"), or a TOML integer (write 0o022).
  std::optional<mode_t> umask(const RawEntry& e);
  /// A TOML array of strings, or an INI value split on commas.
  std::optional<std::vector<std::string>> list(const RawEntry& e);
  /// One of `choices` (case-insensitive); returns the choice's index.
  std::optional<std::size_t> choice(const RawEntry& e, const std::vector<std::string>& choices);

  void error(const Location& where, std::string key, std::string message);
  void warning(const Location& where, std::string key, std::string message);

 private:
  std::optional<std::string> text_of(const RawEntry& e, const char* expected);
  std::vector<Diagnostic>& out_;
  bool typed_;
};

/// Describes a raw value for a message: 'text' for strings, the literal for others.
std::string describe(const RawScalar& v);
/// Parses a duration; nullopt when malformed or negative.
std::optional<Duration> parse_duration(std::string_view text);
/// Formats a duration the way parse_duration reads it: "500ms", "30s", "2m30s".
std::string format_duration(Duration d);
/// A signal number from its name or number, or nullopt.
std::optional<int> parse_signal(std::string_view text);
/// "SIGTERM" for 15; the number as text when unnamed.
std::string signal_name(int signum);

}  // namespace trapeze::conf::detail
