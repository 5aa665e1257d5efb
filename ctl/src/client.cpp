#include "trapeze/ctl/client.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iomanip>
#include <ostream>
#include <random>
#include <stdexcept>

#include <fmt/format.h>
#include <zmq.hpp>

#include "trapeze/ctl/curve.hpp"

#include "trapeze/conf/load.hpp"
#include "trapeze/conf/paths.hpp"

namespace trapeze::ctl {
namespace {

using json = nlohmann::json;

conf::Config read_config(const std::string& path) {
  auto options = conf::LoadOptions::from_process();
  options.resolve_hooks = false;
  options.check_commands = false;
  try {
    return conf::load(path, options);
  } catch (const conf::ConfigError& e) {
    throw std::runtime_error(e.what());
  }
}

std::string cell(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt::format("{:.1f}", v.get<double>());
  return v.dump();
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f}{}", bytes, units[u]) : fmt::format("{:.1f}{}", bytes, units[u]);
}

std::string human_age(double seconds) {
  auto s = static_cast<long long>(seconds);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

// Columns padded to their widest cell.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out << line << '\n';
  }
}

void print_stats(std::ostream& out, const json& infos_by_watcher) {
  std::vector<std::vector<std::string>> rows = {
      {"WATCHER", "WID", "PID", "STATUS", "AGE", "CPU%", "RSS", "COMMAND"}};
  for (auto& [watcher, infos] : infos_by_watcher.items())
    for (auto& [pid, info] : infos.items())
      rows.push_back({watcher, cell(info.value("wid", json(0))), pid, info.value("status", ""),
                      human_age(info.value("age", 0.0)), fmt::format("{:.1f}", info.value("cpu", 0.0)),
                      human_bytes(info.value("mem_info1", 0.0)), info.value("cmdline", "")});
  print_table(out, rows);
}

// How each command's ok reply reads for a person.
void print_reply(std::ostream& out, const std::string& command, const json& props, const json& reply) {
  if (command == "status") {
    if (reply.contains("statuses")) {
      std::vector<std::vector<std::string>> rows = {{"WATCHER", "STATUS"}};
      for (auto& [name, status] : reply["statuses"].items())
        rows.push_back({name, status.get<std::string>()});
      print_table(out, rows);
    } else {
      out << reply.value("status", "") << '\n';
      if (reply.contains("processes") && !reply["processes"].empty()) {
        std::vector<std::vector<std::string>> rows = {{"PID", "WID", "STATE", "READY"}};
        for (auto& p : reply["processes"])
          rows.push_back({cell(p.value("pid", json(0))), cell(p.value("wid", json(0))), p.value("state", ""),
                          p.value("ready", false) ? "yes" : "no"});
        print_table(out, rows);
      }
    }
  } else if (command == "list") {
    for (auto& v : reply.contains("pids") ? reply["pids"] : reply["watchers"]) out << cell(v) << '\n';
  } else if (command == "incr" || command == "decr" || command == "numprocesses") {
    out << reply["numprocesses"] << '\n';
  } else if (command == "numwatchers") {
    out << reply["numwatchers"] << '\n';
  } else if (command == "get" || command == "options" || command == "globaloptions") {
    for (auto& [k, v] : reply["options"].items()) out << k << " = " << cell(v) << '\n';
  } else if (command == "stats") {
    if (reply.contains("infos"))
      print_stats(out, reply["infos"]);
    else if (reply.contains("process"))
      print_stats(out, {{props.value("name", ""), {{cell(reply["process"]), reply["info"]}}}});
    else
      print_stats(out, {{reply.value("name", ""), reply["info"]}});
  } else if (command == "dstats" || command == "listsockets") {
    out << reply.dump(2) << '\n';
  } else if (command == "logs") {
    out << reply.value("output", "");
  } else if (command == "notify") {
    out << reply.value("event", "") << (reply.value("queued", true) ? " queued" : " already queued") << '\n';
  } else if (command == "dispatches") {
    std::vector<std::vector<std::string>> rows = {
        {"ID", "EVENT", "WORKLOAD", "STATE", "ATTEMPT", "REQUESTED"}};
    for (auto& d : reply["dispatches"])
      rows.push_back({cell(d.value("id", json(0))), d.value("event", ""), d.value("workload", ""),
                      d.value("state", ""),
                      fmt::format("{}/{}", d.value("attempt", 0), d.value("max_retry", 0) + 1),
                      d.value("requested_at", "")});
    print_table(out, rows);
  } else if (command == "operations") {
    std::vector<std::vector<std::string>> rows = {
        {"WATCHER", "OPERATION", "STATE", "ATTEMPT", "REQUESTED", "FINISHED", "ERROR"}};
    for (auto& [watcher, ops] : reply["operations"].items())
      for (auto& o : ops)
        rows.push_back({watcher, o.value("operation", ""), o.value("state", ""),
                        o.contains("max_retry")
                            ? fmt::format("{}/{}", o.value("attempt", 0), o.value("max_retry", 0) + 1)
                            : std::string("-"),
                        o.value("requested_at", ""), o.value("finished_at", ""), o.value("error", "")});
    print_table(out, rows);
  } else if (command == "checks") {
    std::vector<std::vector<std::string>> rows = {
        {"WATCHER", "CHECK", "KIND", "STATUS", "FAILURES", "LAST ERROR"}};
    for (auto& c : reply["checks"])
      rows.push_back({c.value("watcher", ""), c.value("name", ""), c.value("kind", ""), c.value("status", ""),
                      fmt::format("{}/{}", c.value("failures", 0), c.value("threshold", 0)),
                      c.value("last_error", "")});
    print_table(out, rows);
  } else {
    out << "ok\n";
  }
}

}  // namespace

std::string resolve_endpoint(const ClientOptions& options) {
  if (!options.endpoint.empty()) return options.endpoint;
  if (const char* env = std::getenv("TRAPEZE_ENDPOINT"); env && *env) return env;
  if (!options.config.empty()) return conf::control_endpoint(read_config(options.config), false);
  throw std::runtime_error("no arbiter given: use -c CONFIG, --endpoint ENDPOINT or $TRAPEZE_ENDPOINT");
}

namespace {

/// One request on its own DEALER socket, sent at construction; wait() takes its reply.
class Request {
 public:
  Request(const std::string& endpoint, const std::string& command, const json& properties)
      : context_(1), socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    curve::client_from_env(socket_);
    try {
      socket_.connect(endpoint);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error(fmt::format("cannot connect to '{}': {}", endpoint, e.what()));
    }
    id_ = fmt::format("{:x}", std::random_device{}()) + fmt::format("{:x}", getpid());
    json request = {{"id", id_}, {"command", command}, {"properties", properties}, {"msg_type", "dealer"}};
    socket_.send(zmq::buffer(request.dump()), zmq::send_flags::none);
  }

  /// The reply, or nothing when `timeout` passes first.
  std::optional<json> wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t frame;
      if (!socket_.recv(frame, zmq::recv_flags::dontwait)) continue;
      json reply = json::parse(frame.to_string_view(), nullptr, false);
      if (reply.is_discarded() || !reply.is_object()) continue;
      if (reply.value("id", json()) != json(id_)) continue;  // a late answer to someone else's question
      return reply;
    }
  }

 private:
  zmq::context_t context_;
  zmq::socket_t socket_;
  std::string id_;
};

}  // namespace

Answer call(const std::string& endpoint, const std::string& command, const json& properties,
            std::chrono::milliseconds timeout) {
  Request request(endpoint, command, properties);
  if (auto reply = request.wait(timeout)) return {Answer::Kind::reply, std::move(*reply)};
  return {};
}

Answer call_while_alive(const std::string& endpoint, const std::string& command, const json& properties,
                        std::chrono::milliseconds probe_every) {
  Request request(endpoint, command, properties);
  for (;;) {
    if (auto reply = request.wait(probe_every)) return {Answer::Kind::reply, std::move(*reply)};
    if (call(endpoint, "numwatchers", json::object(), probe_every).kind == Answer::Kind::timeout) return {};
  }
}

int run_command(const ClientOptions& options, const std::string& command, const json& properties,
                std::ostream& out, std::ostream& err) {
  std::string endpoint;
  try {
    endpoint = resolve_endpoint(options);
  } catch (const std::exception& e) {
    err << "trapeze: " << e.what() << '\n';
    return 2;
  }
  Answer answer;
  try {
    answer = options.wait_while_alive ? call_while_alive(endpoint, command, properties, options.timeout)
                                      : call(endpoint, command, properties, options.timeout);
  } catch (const std::exception& e) {
    err << "trapeze: " << e.what() << '\n';
    return 3;
  }
  if (answer.kind == Answer::Kind::timeout) {
    err << fmt::format("trapeze: no answer from {} within {} ms (is the arbiter running?)\n", endpoint,
                       options.timeout.count());
    return 3;
  }
  const json& reply = answer.reply;
  // Not == "ok": circus's `status NAME` answers {"status": "active"}, the watcher's state in
  // place of the usual "ok".
  bool ok = reply.value("status", "") != "error";
  if (options.json) {
    out << reply.dump() << '\n';
  } else if (ok) {
    print_reply(out, command, properties, reply);
  } else {
    err << "trapeze: error: " << reply.value("reason", "unknown error") << '\n';
  }
  return ok ? 0 : 1;
}

int listen(const ListenOptions& options, std::ostream& out, std::ostream& err) {
  std::string endpoint = options.events_endpoint;
  try {
    if (endpoint.empty() && !options.client.endpoint.empty()) {
      // Ask the arbiter where its bus is.
      Answer a = call(options.client.endpoint, "globaloptions", json::object(), options.client.timeout);
      if (a.kind == Answer::Kind::timeout) {
        err << "trapeze: no answer from " << options.client.endpoint << '\n';
        return 3;
      }
      endpoint = a.reply["options"].value("pubsub_endpoint", "");
    }
    if (endpoint.empty() && !options.client.config.empty())
      endpoint = conf::events_endpoint(read_config(options.client.config), false);
    if (endpoint.empty())
      endpoint = std::getenv("TRAPEZE_EVENTS_ENDPOINT") ? std::getenv("TRAPEZE_EVENTS_ENDPOINT") : "";
    if (endpoint.empty())
      throw std::runtime_error(
          "no arbiter given: use -c CONFIG, --events-endpoint ENDPOINT or --endpoint ENDPOINT");
  } catch (const std::exception& e) {
    err << "trapeze: " << e.what() << '\n';
    return 2;
  }
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::sub);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::rcvhwm, 100000);
  try {
    curve::client_from_env(socket);
  } catch (const std::exception& e) {
    err << "trapeze: " << e.what() << '\n';
    return 2;
  }
  if (options.topics.empty()) socket.set(zmq::sockopt::subscribe, "");
  for (const auto& t : options.topics) socket.set(zmq::sockopt::subscribe, t);
  try {
    socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    err << fmt::format("trapeze: cannot connect to '{}': {}\n", endpoint, e.what());
    return 2;
  }
  for (long seen = 0; options.count < 0 || seen < options.count;) {
    zmq::message_t topic, payload;
    if (!socket.recv(topic)) continue;
    if (!topic.more() || !socket.recv(payload)) continue;
    ++seen;
    if (options.client.json) {
      json data = json::parse(payload.to_string_view(), nullptr, false);
      out << json{{"topic", topic.to_string()}, {"data", data}}.dump() << std::endl;
    } else {
      out << topic.to_string_view() << ' ' << payload.to_string_view() << std::endl;
    }
  }
  return 0;
}

}  // namespace trapeze::ctl
