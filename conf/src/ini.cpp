// The circus INI dialect, read as circus's StrictConfigParser reads it (circus/util.py):
// - comments: a line starting with '#' or ';', or with "rem" (case-insensitive, no indent);
//   inline, only the first ';' and only when whitespace precedes it ("args = -q  # x" keeps "# x");
// - "key = value" or "key: value"; keys are case-sensitive; a value of "" is the empty string;
// - an indented line continues the previous value, joined with a newline;
// - a section seen again (in the same file or an include) is extended, and the first value
//   given for a key wins, so the main file overrides its includes;
// - includes come only from the main file's [circus] include / include_dir, as globs relative
//   to the main file; a glob that matches nothing is a warning.
//
// Why not libinih (the issue asked for it): Debian's libinih 55 is built with INI_MAX_LINE=200
// and without INI_HANDLER_LINENO. A value longer than 199 characters is cut and its tail read as
// a bogus next line, and a handler cannot learn the line of the key it is given, so errors could
// not name file:line. Both are compile-time options of the shared library. circus's own parser is
// line-based and small; reproducing its quirks exactly is simpler than undoing inih's.
#include <glob.h>

#include <algorithm>
#include <filesystem>

#include "interpolate.hpp"
#include "raw.hpp"
#include "text.hpp"

namespace trapeze::conf::detail {
namespace {

namespace fs = std::filesystem;

class IniReader {
 public:
  explicit IniReader(RawDoc& doc) : doc_(doc) {}

  void read(std::string_view text, const std::string& file) {
    doc_.files.push_back(file);
    RawSection* section = nullptr;
    RawEntry* option = nullptr;  // the value continuation lines extend
    int lineno = 0;
    std::size_t pos = 0;
    if (text.substr(0, 3) == "\xEF\xBB\xBF") pos = 3;  // a UTF-8 byte order mark
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      std::string_view line = text.substr(pos, end == std::string_view::npos ? end : end - pos);
      pos = end == std::string_view::npos ? text.size() : end + 1;
      ++lineno;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      Location where{file, lineno};

      if (trim(line).empty() || line[0] == '#' || line[0] == ';') continue;
      if ((line[0] == 'r' || line[0] == 'R') && lower(split_ws(line)[0]) == "rem") continue;

      if (is_space(line[0]) && section != nullptr && option != nullptr) {
        auto more = trim(line);
        auto& value = std::get<std::string>(option->value);
        if (!more.empty()) value += (continued_ ? "\n" : "") + std::string(more);
        continued_ = true;
        continue;
      }
      if (line[0] == '[') {
        section = open_section(line, where);
        option = nullptr;
        continue;
      }
      if (section == nullptr) {
        error(where, "",
              "a value outside any section: " + quote(trim(line)) +
                  " (a section header such as [watcher:NAME] must come first)");
        return;
      }
      option = add_option(*section, line, where);
    }
  }

 private:
  RawSection* open_section(std::string_view line, const Location& where) {
    auto close = line.rfind(']');
    std::string name(close == std::string_view::npos ? std::string_view{} : trim(line.substr(1, close - 1)));
    if (close == std::string_view::npos || name.empty()) {
      error(where, "", "malformed section header " + quote(trim(line)));
      return nullptr;
    }
    if (name == "DEFAULT") {
      error(where, "[DEFAULT]", "the [DEFAULT] section is not supported; repeat options in each section");
      return nullptr;
    }
    if (RawSection* existing = doc_.find(name)) {
      if (existing->where.file != where.file)
        warning(where, "[" + name + "]",
                "extends the section of " + existing->where.file + ":" +
                    std::to_string(existing->where.line) + "; values given there win");
      return existing;
    }
    doc_.sections.push_back(RawSection{name, where, {}});
    return &doc_.sections.back();
  }

  RawEntry* add_option(RawSection& section, std::string_view line, const Location& where) {
    auto delim = line.find_first_of("=:");
    if (delim == std::string_view::npos) {
      error(where, "", "cannot parse " + quote(trim(line)) + ": expected 'key = value'");
      return nullptr;
    }
    std::string key(trim(line.substr(0, delim)));
    std::string value(trim(line.substr(delim + 1)));
    if (auto semi = value.find(';'); semi != std::string::npos) {
      // circus looks at the first ';' only; index -1 is Python's last character.
      char before = semi == 0 ? value.back() : value[semi - 1];
      if (is_space(before)) value = std::string(trim(std::string_view(value).substr(0, semi)));
    }
    if (value == "\"\"") value.clear();
    if (key.empty()) {
      error(where, "", "an option with no name: " + quote(trim(line)));
      return nullptr;
    }
    continued_ = !value.empty();
    for (auto& e : section.entries) {
      if (e.key == key) {
        // circus keeps the first value; continuation lines that follow still extend it.
        warning(where, key,
                "given again in [" + section.name + "]; the first value, at " + e.where.file + ":" +
                    std::to_string(e.where.line) + ", is kept (as circus does)");
        continued_ = !std::get<std::string>(e.value).empty();
        return &e;
      }
    }
    section.entries.push_back(RawEntry{key, value, where});
    // Entries are only ever appended to the current section; the pointer stays valid until
    // the next option is added, which replaces it.
    return &section.entries.back();
  }

  void error(const Location& where, std::string key, std::string message) {
    doc_.diagnostics.push_back({Severity::error, where, std::move(key), std::move(message)});
  }
  void warning(const Location& where, std::string key, std::string message) {
    doc_.diagnostics.push_back({Severity::warning, where, std::move(key), std::move(message)});
  }

  RawDoc& doc_;
  bool continued_ = false;  // whether the current value already has text (a newline joins more)
};

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  return out;
}

}  // namespace

RawDoc read_ini(const std::string& text, const std::string& path,
                const std::map<std::string, std::string>& environ, bool follow_includes) {
  RawDoc doc;
  doc.format = Format::ini;
  IniReader reader(doc);
  reader.read(text, path);

  const RawSection* circus = doc.find("circus");
  if (circus == nullptr) circus = doc.find("trapeze");
  if (circus == nullptr) return doc;

  fs::path base = fs::path(path).parent_path();
  struct Pattern {
    std::string glob;
    std::string key;
    Location where;
  };
  std::vector<Pattern> patterns;
  auto collect = [&](std::string_view key, std::string_view suffix) {
    const RawEntry* e = circus->find(key);
    if (e == nullptr) return;
    std::string value = interpolate(std::get<std::string>(e->value), environ, nullptr);
    for (auto& word : split_ws(value)) {
      fs::path p = fs::path(word) / suffix;
      if (p.is_relative()) p = base / p;
      patterns.push_back({p.lexically_normal().string(), std::string(key), e->where});
    }
  };
  collect("include", "");
  collect("include_dir", "*.ini");
  if (!follow_includes) return doc;

  std::vector<std::string> includes;
  for (auto& pattern : patterns) {
    std::string clean = pattern.glob;
    if (!clean.empty() && clean.back() == '/') clean.pop_back();
    auto found = expand_glob(clean);
    if (found.empty())
      doc.diagnostics.push_back(
          {Severity::warning, pattern.where, pattern.key,
           quote(clean) + " matches no file (paths are relative to the main config file)"});
    includes.insert(includes.end(), found.begin(), found.end());
  }
  for (const auto& file : includes) {
    std::string included;
    try {
      included = read_file(file);
    } catch (const ConfigError& e) {
      doc.diagnostics.insert(doc.diagnostics.end(), e.diagnostics().begin(), e.diagnostics().end());
      continue;
    }
    reader.read(included, file);
  }
  return doc;
}

}  // namespace trapeze::conf::detail
