// Small string helpers shared by the loaders and the builder.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace trapeze::conf::detail {

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s);
std::string lower(std::string_view s);
bool starts_with_icase(std::string_view s, std::string_view prefix);
std::vector<std::string> split_ws(std::string_view s);
/// Splits on `sep`, trimming each part; empty parts are kept.
std::vector<std::string> split(std::string_view s, char sep);
/// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);
/// The closest candidate within a small distance, or empty.
std::string closest(std::string_view word, const std::vector<std::string>& candidates);
/// Quotes a value for a message: 'value' with control characters escaped.
std::string quote(std::string_view s);
bool valid_utf8(std::string_view s);

}  // namespace trapeze::conf::detail
