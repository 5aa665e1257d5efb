// The native format. TOML tables map onto the INI dialect's sections so that one builder
// checks both: [arbiter] is [circus], [watchers.NAME] is [watcher:NAME], [sockets.NAME] is
// [socket:NAME]; nested tables become dotted keys ([watchers.web.hooks] before_start = ...
// is hooks.before_start; [watchers.web.checks.up] tcp = ... is checks.up.tcp, which the builder
// takes for the INI spelling check.up.tcp). Entries keep their file order.
#include <algorithm>

#include <toml++/toml.h>

#include <fmt/format.h>

#include "raw.hpp"
#include "text.hpp"

namespace trapeze::conf::detail {
namespace {

class TomlReader {
 public:
  TomlReader(RawDoc& doc, std::string file) : doc_(doc), file_(std::move(file)) {}

  void read(const toml::table& root) {
    for (const auto& [key, node] : root) {
      std::string name(key.str());
      Location where = at(node);
      const toml::table* table = node.as_table();
      if (table == nullptr) {
        error(where, name, "a top-level key must be a table such as [arbiter] or [watchers.NAME]");
        continue;
      }
      if (name == "arbiter" || name == "env" || name == "juju") {
        section(name == "arbiter" ? "circus" : name, where, *table);
      } else if (name == "watchers" || name == "sockets") {
        for (const auto& [sub, subnode] : *table) {
          std::string label = (name == "watchers" ? "watcher:" : "socket:") + std::string(sub.str());
          if (const toml::table* t = subnode.as_table())
            section(label, at(subnode), *t);
          else
            error(at(subnode), fmt::format("{}.{}", name, sub.str()),
                  fmt::format("expected a table [{}.{}]", name, sub.str()));
        }
      } else {
        std::string guess = closest(name, {"arbiter", "env", "juju", "watchers", "sockets"});
        error(where, "[" + name + "]",
              fmt::format("unknown table{}", guess.empty()
                                                 ? " (arbiter, env, juju, watchers.NAME, sockets.NAME)"
                                                 : fmt::format("; did you mean [{}]?", guess)));
      }
    }
  }

 private:
  Location at(const toml::node& node) const { return {file_, static_cast<int>(node.source().begin.line)}; }

  void section(const std::string& name, const Location& where, const toml::table& table) {
    RawSection s{name, where, {}};
    flatten(table, "", s);
    // toml++ hands keys over sorted by name; the builder reads them in file order, as from INI,
    // so that "already given" and "first key" mean what they say.
    std::stable_sort(s.entries.begin(), s.entries.end(),
                     [](const RawEntry& a, const RawEntry& b) { return a.where.line < b.where.line; });
    doc_.sections.push_back(std::move(s));
  }

  void flatten(const toml::table& table, const std::string& prefix, RawSection& s) {
    for (const auto& [key, node] : table) {
      std::string name = prefix + std::string(key.str());
      Location where = at(node);
      if (const toml::table* t = node.as_table()) {
        flatten(*t, name + ".", s);
      } else if (auto v = node.value<std::string>(); v && node.is_string()) {
        s.entries.push_back({name, *v, where});
      } else if (node.is_integer()) {
        s.entries.push_back({name, *node.value<std::int64_t>(), where});
      } else if (node.is_floating_point()) {
        s.entries.push_back({name, *node.value<double>(), where});
      } else if (node.is_boolean()) {
        s.entries.push_back({name, *node.value<bool>(), where});
      } else if (const toml::array* a = node.as_array()) {
        std::vector<std::string> items;
        bool strings = true;
        for (const auto& item : *a) {
          if (auto text = item.value<std::string>(); text && item.is_string())
            items.push_back(*text);
          else
            strings = false;
        }
        if (strings)
          s.entries.push_back({name, items, where});
        else
          error(where, name, "expected an array of strings");
      } else {
        error(where, name, "dates and times are not accepted; durations are strings such as \"30s\"");
      }
    }
  }

  void error(const Location& where, std::string key, std::string message) {
    doc_.diagnostics.push_back({Severity::error, where, std::move(key), std::move(message)});
  }

  RawDoc& doc_;
  std::string file_;
};

}  // namespace

RawDoc read_toml(const std::string& text, const std::string& path) {
  RawDoc doc;
  doc.format = Format::toml;
  doc.files.push_back(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    doc.diagnostics.push_back(
        {Severity::error, {path, static_cast<int>(e.source().begin.line)}, "", std::string(e.description())});
    return doc;
  }
  TomlReader(doc, path).read(root);
  return doc;
}

}  // namespace trapeze::conf::detail
