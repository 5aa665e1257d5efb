#include "trapeze/watchers/command.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

namespace trapeze::watchers {
namespace {

bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// Replaces $(circus.NAME) / ((circus.NAME)) (or trapeze.) for the per-process names; leaves
/// anything else as written (the loader already replaced $(circus.env.*)).
std::string replace_vars(std::string_view text, int wid, const std::map<std::string, int>& socket_fds) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::string_view rest = text.substr(i);
    bool dollar = rest.starts_with("$(");
    if (!dollar && !rest.starts_with("((")) {
      if (rest.starts_with("$WID")) {
        out += std::to_string(wid);
        i += 4;
      } else {
        out += text[i++];
      }
      continue;
    }
    std::string_view close = dollar ? ")" : "))";
    auto end = rest.find(close, 2);
    std::string name = end == std::string_view::npos ? "" : lower(rest.substr(2, end - 2));
    for (std::string_view prefix : {"circus.", "trapeze."})
      if (name.starts_with(prefix)) name.erase(0, prefix.size());
    std::optional<std::string> value;
    if (name == "wid") value = std::to_string(wid);
    if (name.starts_with("sockets."))
      for (const auto& [socket, fd] : socket_fds)
        if (lower(socket) == name.substr(8)) value = std::to_string(fd);
    if (value && end != std::string_view::npos) {
      out += *value;
      i += end + close.size();
    } else {
      out += text[i++];
    }
  }
  return out;
}

}  // namespace

std::variant<std::vector<std::string>, std::string> shell_split(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (blank(c)) {
      if (in_word) words.push_back(std::exchange(word, {}));
      in_word = false;
    } else if (c == '\'') {
      auto end = text.find('\'', i + 1);
      if (end == std::string_view::npos) return std::string("no closing quotation");
      word.append(text.substr(i + 1, end - i - 1));
      in_word = true;
      i = end;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (; j < text.size() && text[j] != '"'; ++j) {
        if (text[j] == '\\' && j + 1 < text.size() && (text[j + 1] == '"' || text[j + 1] == '\\')) ++j;
        word += text[j];
      }
      if (j >= text.size()) return std::string("no closing quotation");
      in_word = true;
      i = j;
    } else if (c == '\\') {
      if (i + 1 >= text.size()) return std::string("no escaped character");
      word += text[++i];
      in_word = true;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

std::string shell_quote(std::string_view word) {
  if (word.empty()) return "''";
  bool safe = std::all_of(word.begin(), word.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '@' || c == '%' || c == '+' || c == '=' || c == ':' || c == ',' ||
           c == '.' || c == '/' || c == '-' || c == '_';
  });
  if (safe) return std::string(word);
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\"'\"'") : std::string(1, c);
  return out + "'";
}

std::variant<ProcessCommand, std::string> process_command(const conf::WatcherConfig& w, int wid,
                                                          const std::map<std::string, int>& socket_fds) {
  std::vector<std::string> words;
  for (auto [field, text] : {std::pair{"cmd", &w.cmd}, std::pair{"args", &w.args}}) {
    auto split = shell_split(replace_vars(*text, wid, socket_fds));
    if (auto* error = std::get_if<std::string>(&split)) return std::string(field) + ": " + *error;
    auto& more = std::get<std::vector<std::string>>(split);
    words.insert(words.end(), more.begin(), more.end());
  }
  if (words.empty()) return std::string("cmd is empty");

  ProcessCommand out;
  if (w.shell) {
    // circus: the words, quoted, become one line for the shell; shell_args follow it.
    std::string line;
    for (const auto& word : words) line += (line.empty() ? "" : " ") + shell_quote(word);
    out.argv = {"/bin/sh", "-c", line};
    auto extra = shell_split(replace_vars(w.shell_args, wid, socket_fds));
    if (auto* error = std::get_if<std::string>(&extra)) return "shell_args: " + *error;
    for (auto& a : std::get<std::vector<std::string>>(extra)) out.argv.push_back(a);
  } else {
    out.argv = std::move(words);
  }
  out.path = w.executable.empty() ? out.argv[0] : w.executable;
  return out;
}

}  // namespace trapeze::watchers
