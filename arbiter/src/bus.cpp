#include "bus.hpp"

#include <sys/stat.h>

#include <chrono>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace trapeze::arbiter {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void bind_private(zmq::socket_t& socket, const std::string& endpoint) {
  try {
    socket.bind(endpoint);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error(fmt::format("cannot bind '{}': {}", endpoint, e.what()));
  }
  if (endpoint.rfind("ipc://", 0) == 0) {
    std::string path = endpoint.substr(6);
    if (chmod(path.c_str(), 0600) < 0) spdlog::warn("arbiter: cannot make '{}' private", path);
  }
}

ZapHandler::ZapHandler(zmq::context_t& context, loop::Loop& loop, std::set<std::string> allowed)
    : socket_(context, zmq::socket_type::rep), allowed_(std::move(allowed)) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
  watch_ = loop.watch(socket_.get(zmq::sockopt::fd), EPOLLIN, [this](std::uint32_t) { drain(); });
  loop.defer([this] { drain(); });
}

// Each request: version, request id, domain, address, identity, mechanism, credentials (the
// client's 32-byte public key for CURVE). The reply says 200 or 400.
void ZapHandler::drain() {
  while (socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) {
    std::vector<zmq::message_t> frames;
    do {
      zmq::message_t m;
      if (!socket_.recv(m, zmq::recv_flags::dontwait)) return;
      frames.push_back(std::move(m));
    } while (frames.back().more());
    std::string request_id = frames.size() > 1 ? frames[1].to_string() : "";
    std::string mechanism = frames.size() > 5 ? frames[5].to_string() : "";
    std::string key;
    if (mechanism == "CURVE" && frames.size() > 6 && frames[6].size() == 32) {
      char text[41];
      zmq_z85_encode(text, static_cast<const std::uint8_t*>(frames[6].data()), 32);
      key = text;
    }
    bool ok = !key.empty() && allowed_.count(key) != 0;
    if (!ok) spdlog::warn("arbiter: refused a CURVE client ({}): its key is not in curve_clients", key.empty() ? "no key" : key);
    const std::string reply[] = {"1.0", request_id, ok ? "200" : "400", ok ? "OK" : "not allowed", ok ? key : "", ""};
    for (std::size_t i = 0; i < 6; ++i)
      socket_.send(zmq::buffer(reply[i]), i < 5 ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

EventBus::EventBus(zmq::context_t& context, const std::string& endpoint, int hwm, const curve::Keypair* curve)
    : socket_(context, zmq::socket_type::pub), endpoint_(endpoint) {
  socket_.set(zmq::sockopt::linger, 0);
  if (curve) curve::make_server(socket_, *curve);
  // A burst (500 processes killed at once is 1000 events) must fit a subscriber's queue; a
  // subscriber that stops reading costs at most hwm events (~300 bytes each) of memory.
  socket_.set(zmq::sockopt::sndhwm, hwm);
  bind_private(socket_, endpoint);
}

void EventBus::publish(const std::string& topic, const std::string& payload) {
  zmq::send_flags flags = zmq::send_flags::dontwait;
  socket_.send(zmq::buffer(topic), flags | zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(payload), flags);
}

void ControlServer::Reply::ok(nlohmann::json props) {
  if (*sent_) return;
  *sent_ = true;
  if (cast_ || alive_.expired()) return;
  server_->send(envelope_, ctl::ok_reply(id_, unix_now(), std::move(props)));
}

void ControlServer::Reply::error(ctl::ErrorCode code, const std::string& reason) {
  if (*sent_) return;
  *sent_ = true;
  if (cast_ || alive_.expired()) return;
  server_->send(envelope_, ctl::error_reply(id_, unix_now(), code, reason));
}

ControlServer::ControlServer(zmq::context_t& context, loop::Loop& loop, const std::string& endpoint,
                             Handler handler, const curve::Keypair* curve)
    : socket_(context, zmq::socket_type::router),
      loop_(loop),
      endpoint_(endpoint),
      handler_(std::move(handler)) {
  socket_.set(zmq::sockopt::linger, 0);
  // Bounds what one peer can make us buffer; requests over 1 MiB still get an error reply.
  socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(16) << 20);
  socket_.set(zmq::sockopt::router_mandatory, false);
  if (curve) curve::make_server(socket_, *curve);
  bind_private(socket_, endpoint);
  // ZMQ_FD is edge-triggered and shared by reads and writes: after every send, look again.
  watch_ = loop_.watch(socket_.get(zmq::sockopt::fd), EPOLLIN, [this](std::uint32_t) { drain(); });
  loop_.defer([this] { drain(); });
}

void ControlServer::send(const std::vector<std::string>& envelope, const nlohmann::json& reply) {
  std::string text = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  try {
    for (const auto& frame : envelope)
      socket_.send(zmq::buffer(frame), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    socket_.send(zmq::buffer(text), zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    spdlog::debug("control: cannot send a reply: {}", e.what());
  }
  if (!drain_scheduled_) {
    drain_scheduled_ = true;
    loop_.defer([this, alive = std::weak_ptr<int>(alive_)] {
      if (alive.expired()) return;
      drain_scheduled_ = false;
      drain();
    });
  }
}

void ControlServer::drain() {
  for (;;) {
    if (!(socket_.get(zmq::sockopt::events) & ZMQ_POLLIN)) return;
    std::vector<zmq::message_t> frames;
    for (;;) {
      zmq::message_t frame;
      auto got = socket_.recv(frame, zmq::recv_flags::dontwait);
      if (!got) break;
      bool more = frame.more();
      frames.push_back(std::move(frame));
      if (!more) break;
    }
    if (frames.empty()) return;
    if (frames.size() < 2) continue;  // not a client's request: nothing to answer
    // A DEALER client sends one frame; a REQ client puts an empty delimiter first. The reply
    // goes back with the same envelope.
    std::vector<std::string> envelope;
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) envelope.push_back(frames[i].to_string());
    std::string_view body = frames.back().to_string_view();
    auto parsed = ctl::parse_request(body);
    if (auto* error = std::get_if<ctl::RequestError>(&parsed)) {
      if (!error->cast) send(envelope, ctl::error_reply(error->id, unix_now(), error->code, error->reason));
      continue;
    }
    auto& request = std::get<ctl::Request>(parsed);
    Reply reply;
    reply.server_ = this;
    reply.envelope_ = std::move(envelope);
    reply.id_ = request.id;
    reply.cast_ = request.cast;
    reply.alive_ = alive_;
    handler_(std::move(request), std::move(reply));
  }
}

}  // namespace trapeze::arbiter
