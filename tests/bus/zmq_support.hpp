// A circus client (DEALER) and an event subscriber (SUB) for the real arbiter.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "../integration/support.hpp"

namespace trapeze::testing {

/// A config's [circus] section naming ipc endpoints in `dir`.
inline std::string endpoints(const TempDir& dir) {
  return fmt::format("[circus]\nendpoint = ipc://{0}/control\npubsub_endpoint = ipc://{0}/events\n",
                     dir.path().string());
}

class Client {
 public:
  explicit Client(const std::string& endpoint) : socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }

  /// Sends `frame` as it is; returns the reply (nullopt after `timeout`).
  std::optional<Json> raw(const std::string& frame, std::chrono::milliseconds timeout = 10s) {
    socket_.send(zmq::buffer(frame), zmq::send_flags::none);
    return receive(timeout);
  }

  std::optional<Json> receive(std::chrono::milliseconds timeout = 10s) {
    zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, timeout);
    if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
    zmq::message_t msg;
    if (!socket_.recv(msg)) return std::nullopt;
    return Json::parse(msg.to_string_view());
  }

  /// Sends a command and returns its reply (fails the test without one).
  Json call(const std::string& command, Json properties = Json::object(), const std::string& id = "t") {
    Json req = {{"id", id}, {"command", command}, {"properties", properties}};
    auto reply = raw(req.dump());
    REQUIRE(reply);
    return *reply;
  }

  void send(const std::string& command, Json properties, const std::string& id) {
    Json req = {{"id", id}, {"command", command}, {"properties", properties}};
    socket_.send(zmq::buffer(req.dump()), zmq::send_flags::none);
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
};

class Subscriber {
 public:
  /// Connects and waits until the subscription is live: asks `client` for reloadconfig
  /// (which publishes arbiter.reload and changes nothing) until one arrives.
  Subscriber(const std::string& endpoint, Client& client) : socket_(context_, zmq::socket_type::sub) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::subscribe, "");
    socket_.connect(endpoint);
    bool live = false;
    for (int i = 0; i < 100 && !live; ++i) {
      client.call("reloadconfig");
      while (auto e = next(100ms))
        if (e->topic == "arbiter.reload") live = true;
    }
    REQUIRE(live);
  }

  std::optional<Event> next(std::chrono::milliseconds timeout = 10s) {
    zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, timeout);
    if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
    zmq::message_t topic, payload;
    if (!socket_.recv(topic) || !topic.more() || !socket_.recv(payload)) return std::nullopt;
    return Event{topic.to_string(), Json::parse(payload.to_string_view())};
  }

  /// Events until one has topic `last` (included); fails the test if it does not come.
  std::vector<Event> until(const std::string& last, std::chrono::milliseconds timeout = 20s) {
    std::vector<Event> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto e = next(100ms);
      if (!e) continue;
      out.push_back(*e);
      if (e->topic == last) return out;
    }
    std::string seen;
    for (auto& e : out) seen += e.topic + " ";
    INFO("events seen: " << seen);
    FAIL("no event " << last);
    return out;
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
};

inline std::vector<std::string> topics(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (auto& e : events) out.push_back(e.topic);
  return out;
}

}  // namespace trapeze::testing
