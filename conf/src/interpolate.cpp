#include "interpolate.hpp"

#include "text.hpp"

namespace trapeze::conf::detail {
namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

/// Parses one reference at value[pos] ("$(" or "(("); returns its length, 0 when none.
std::size_t match_ref(std::string_view value, std::size_t pos, std::string& name) {
  std::string_view rest = value.substr(pos);
  bool dollar = rest.starts_with("$(");
  if (!dollar && !rest.starts_with("((")) return 0;
  std::size_t i = 2;
  std::size_t prefix = starts_with_icase(rest.substr(i), "circus.")    ? 7
                       : starts_with_icase(rest.substr(i), "trapeze.") ? 8
                                                                       : 0;
  if (prefix == 0) return 0;
  i += prefix;
  std::size_t start = i;
  while (i < rest.size() && is_name_char(rest[i])) ++i;
  if (i == start) return 0;
  std::string_view close = dollar ? ")" : "))";
  if (rest.substr(i, close.size()) != close) return 0;
  name = lower(rest.substr(start, i - start));
  return i + close.size();
}

const std::string* lookup_icase(const std::map<std::string, std::string>& env, std::string_view name) {
  if (auto it = env.find(std::string(name)); it != env.end()) return &it->second;
  const std::string* found = nullptr;
  for (const auto& [k, v] : env)
    if (lower(k) == lower(name)) found = &v;
  return found;
}

}  // namespace

std::string interpolate(std::string_view value, const std::map<std::string, std::string>& env,
                        std::vector<std::string>* unset) {
  std::string out;
  std::size_t pos = 0;
  while (pos < value.size()) {
    std::string name;
    std::size_t len = match_ref(value, pos, name);
    if (len == 0) {
      out += value[pos++];
      continue;
    }
    std::string_view text = value.substr(pos, len);
    const std::string* found = nullptr;
    if (name.starts_with("env.")) {
      // Look the original spelling up first: env names are case-sensitive, circus's match is not.
      std::string_view original = text.substr(text.find('.') + 1);
      original = original.substr(original.find('.') + 1, name.size() - 4);
      found = lookup_icase(env, original);
      if (found == nullptr && unset != nullptr) unset->emplace_back(original);
    }
    out += found != nullptr ? *found : std::string(text);
    pos += len;
  }
  return out;
}

std::vector<VarRef> find_vars(std::string_view value) {
  std::vector<VarRef> refs;
  for (std::size_t pos = 0; pos < value.size();) {
    std::string name;
    std::size_t len = match_ref(value, pos, name);
    if (len == 0) {
      ++pos;
      continue;
    }
    refs.push_back({std::string(value.substr(pos, len)), name});
    pos += len;
  }
  return refs;
}

std::string expand_env_value(std::string_view value, const std::map<std::string, std::string>& env,
                             std::vector<std::string>* unset, bool dollar_escape) {
  std::string out;
  for (std::size_t pos = 0; pos < value.size();) {
    if (dollar_escape && value.substr(pos, 2) == "$$") {
      out += '$';
      pos += 2;
      continue;
    }
    if (value[pos] == '$' && pos + 1 < value.size() && value[pos + 1] >= 'A' && value[pos + 1] <= 'Z') {
      std::size_t end = pos + 1;
      while (end < value.size() && ((value[end] >= 'A' && value[end] <= 'Z') ||
                                    (value[end] >= '0' && value[end] <= '9') || value[end] == '_'))
        ++end;
      std::string name(value.substr(pos + 1, end - pos - 1));
      if (auto it = env.find(name); it != env.end())
        out += it->second;
      else if (unset != nullptr)
        unset->push_back(name);
      pos = end;
      continue;
    }
    out += value[pos++];
  }
  return out;
}

}  // namespace trapeze::conf::detail
