// The ZeroMQ side of the arbiter: the event bus (PUB) and the control socket (ROUTER), both
// on one context, both used on the loop thread only.
//
// ipc:// endpoints are bound inside the runtime directory (mode 0700) and the socket files
// are made 0600; tcp:// endpoints only when the config names them.
#pragma once

#include <deque>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "trapeze/ctl/curve.hpp"
#include "trapeze/ctl/protocol.hpp"
#include "trapeze/loop/loop.hpp"

namespace trapeze::arbiter {

/// ZeroMQ's authentication protocol (ZAP) for CURVE: a client gets in only when its public key
/// is listed. Must exist before the sockets it guards are bound.
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& context, loop::Loop& loop, std::set<std::string> allowed);

 private:
  void drain();
  zmq::socket_t socket_;
  loop::FdWatch watch_;
  std::set<std::string> allowed_;
};

class EventBus {
 public:
  /// Binds `endpoint`. Throws zmq::error_t or std::runtime_error ("cannot bind ...").
  /// With `curve`, the socket is a CURVE server. At most `hwm` events wait for any one
  /// subscriber; past that, that subscriber alone loses events.
  EventBus(zmq::context_t& context, const std::string& endpoint, int hwm, const curve::Keypair* curve = nullptr);
  /// Two frames: the topic, then the JSON payload. Never blocks: a subscriber that cannot
  /// keep up loses messages (it sees a gap in `seq`).
  void publish(const std::string& topic, const std::string& payload);
  const std::string& endpoint() const { return endpoint_; }

 private:
  zmq::socket_t socket_;
  std::string endpoint_;
};

/// circus's control protocol over a ROUTER socket: DEALER clients send one JSON frame; the
/// reply goes back to the same client. Parsing and validation are ctl::parse_request's.
class ControlServer {
 public:
  /// Sends the reply of one request: an ok reply with these properties (an object), or an
  /// error. Calling it more than once, or for a cast, sends nothing more.
  class Reply {
   public:
    void ok(nlohmann::json props = nlohmann::json::object());
    void error(ctl::ErrorCode code, const std::string& reason);
    bool sent() const { return *sent_; }

   private:
    friend class ControlServer;
    ControlServer* server_ = nullptr;
    std::vector<std::string> envelope_;  // the client's identity (and a REQ client's delimiter)
    nlohmann::json id_;
    bool cast_ = false;
    std::shared_ptr<bool> sent_ = std::make_shared<bool>(false);
    std::weak_ptr<int> alive_;
  };

  using Handler = std::function<void(ctl::Request, Reply)>;

  ControlServer(zmq::context_t& context, loop::Loop& loop, const std::string& endpoint, Handler handler,
                const curve::Keypair* curve = nullptr);
  const std::string& endpoint() const { return endpoint_; }

 private:
  void drain();
  void send(const std::vector<std::string>& envelope, const nlohmann::json& reply);

  zmq::socket_t socket_;
  loop::Loop& loop_;
  std::string endpoint_;
  Handler handler_;
  loop::FdWatch watch_;
  bool drain_scheduled_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

/// Binds `socket` to `endpoint`; for ipc://, makes the socket file 0600 (the directory that
/// holds it is 0700 already).
void bind_private(zmq::socket_t& socket, const std::string& endpoint);

/// Unix time now, as a float (circus's "time").
double unix_now();

}  // namespace trapeze::arbiter
