#include "targets.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "trapeze/conf/load.hpp"
#include "trapeze/conf/show.hpp"
#include "trapeze/ctl/protocol.hpp"
#include "trapeze/juju/queue.hpp"

namespace trapeze::fuzz {
namespace {

using nlohmann::json;

[[noreturn]] void broken(const std::string& what) {
  throw PropertyBroken(what);
}

// A directory that does not exist: relative paths in a config resolve under it, and nothing
// there can be read.
constexpr const char* kIniName = "/nonexistent/trapeze-fuzz/fuzz.ini";
constexpr const char* kTomlName = "/nonexistent/trapeze-fuzz/fuzz.toml";

conf::LoadOptions load_options() {
  conf::LoadOptions o;
  o.environ = {{"HOME", "/nonexistent/home"}, {"PATH", "/usr/bin:/bin"}, {"USER", "fuzz"}};
  o.resolve_hooks = false;    // no dlopen of whatever a hook spec names
  o.check_commands = false;   // no PATH lookups
  o.follow_includes = false;  // no reading of files an include names
  return o;
}

bool is_utf8(std::string_view text) {
  try {
    (void)json(std::string(text)).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

void config(std::string_view input, bool is_toml) {
  static const conf::LoadOptions options = load_options();
  conf::Config loaded;
  try {
    loaded = is_toml ? conf::load_toml_text(std::string(input), kTomlName, options)
                     : conf::load_ini_text(std::string(input), kIniName, options);
  } catch (const conf::ConfigError&) {
    return;  // refused with diagnostics: what a bad config must get
  }
  // `trapeze check` shows the normalized config; its TOML is documented to load back to the
  // same model. TOML holds UTF-8 only: an INI file with other bytes renders, but not back.
  std::string model_text = conf::to_json(loaded).dump(-1, ' ', false, json::error_handler_t::replace);
  if (!is_utf8(input)) return;
  json model = json::parse(model_text);
  std::string text = conf::to_toml(loaded);
  conf::Config again;
  try {
    again = conf::load_toml_text(text, kTomlName, options);
  } catch (const conf::ConfigError& e) {
    broken(fmt::format("the normalized TOML does not load back: {}\n--- normalized:\n{}", e.what(), text));
  }
  json model_again = json::parse(conf::to_json(again).dump(-1, ' ', false, json::error_handler_t::replace));
  // Known gap (docs/reliability.md): a value that still holds $(circus.env.X) markup after
  // loading (an unset X, or a variable whose value holds the markup) is expanded again when
  // its TOML is loaded, and neither format has an escape for it. It must load; it may differ.
  std::string folded = model_text;
  for (char& c : folded) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (folded.find("circus.env.") != std::string::npos || folded.find("trapeze.env.") != std::string::npos) return;
  if (model_again != model)
    broken(fmt::format("the normalized TOML loads to another model:\n{}\n--- then:\n{}", model.dump(1),
                       model_again.dump(1)));
}

}  // namespace

void ini(std::string_view input) {
  config(input, false);
}

void toml(std::string_view input) {
  config(input, true);
}

void control(std::string_view input) {
  constexpr double kNow = 1700000000.5;
  auto parsed = ctl::parse_request(input);
  json reply;
  json id;
  if (auto* error = std::get_if<ctl::RequestError>(&parsed)) {
    if (error->cast) return;  // the server sends nothing for a cast
    if (error->reason.empty()) broken("an error reply without a reason");
    id = error->id;
    reply = ctl::error_reply(error->id, kNow, error->code, error->reason);
  } else {
    auto& request = std::get<ctl::Request>(parsed);
    const auto& known = ctl::known_commands();
    if (std::find(known.begin(), known.end(), request.command) == known.end())
      broken(fmt::format("accepted an unknown command '{}'", request.command));
    if (!request.properties.is_object()) broken("accepted properties that are not an object");
    id = request.id;
    reply = ctl::ok_reply(request.id, kNow, {{"command", request.command}, {"properties", request.properties}});
  }
  // The wire text, strict: a reply must be valid UTF-8 JSON whatever the client sent.
  std::string text;
  try {
    text = reply.dump();
  } catch (const json::exception& e) {
    broken(fmt::format("the reply cannot be serialized: {}", e.what()));
  }
  json back = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (back.is_discarded() || !back.is_object()) broken("the reply does not parse back: " + text);
  if (back["id"] != id) broken("the reply does not carry the request's id: " + text);
  if (!back["status"].is_string()) broken("the reply has no status: " + text);
}

namespace {

/// A private directory for the queue file, on tmpfs when there is one (the queue fsyncs
/// every change). Made once per process; the file in it is rewritten for every input.
struct TempDir {
  std::string path;
  TempDir() {
    std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm"
                                                                 : std::filesystem::temp_directory_path().string();
    path = base + "/trapeze-fuzz-queue-XXXXXX";
    if (::mkdtemp(path.data()) == nullptr) throw std::runtime_error("cannot make a directory in " + base);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

const std::string& queue_dir() {
  static const TempDir dir;
  return dir.path;
}

}  // namespace

void queue(std::string_view input) {
  const std::string path = queue_dir() + "/queue.json";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(input.data(), static_cast<std::streamsize>(input.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
  }
  std::optional<juju::DispatchQueue> q;
  try {
    q.emplace(path);
  } catch (const juju::QueueError& e) {
    if (std::string_view(e.what()).find(path) == std::string_view::npos)
      broken(fmt::format("a queue error that does not name the file: {}", e.what()));
    return;  // a damaged file, refused with a reason
  }
  // A queue that loaded is one the arbiter keeps using: every change is written, and what is
  // written reads back the same.
  auto reread = [&](const char* after) {
    try {
      juju::DispatchQueue again(path);
      if (again.entries() != q->entries()) broken(fmt::format("after {}, the file reads back different entries", after));
    } catch (const juju::QueueError& e) {
      broken(fmt::format("after {}, the queue's own file is refused: {}", after, e.what()));
    }
  };
  const auto now = juju::Clock::time_point(std::chrono::seconds(1700000000));
  q->push("fuzz-workload-ready", "fuzz", {{"JUJU_NOTICE_KEY", "fuzz"}}, now);
  reread("a push");
  if (q->entries().size() >= 2 && !(q->entries()[q->entries().size() - 2].id < q->entries().back().id))
    broken("a pushed entry's id is not above the one before it");
  q->start_head(now);
  reread("an attempt");
  q->pop_head();
  reread("a pop");
}

}  // namespace trapeze::fuzz
