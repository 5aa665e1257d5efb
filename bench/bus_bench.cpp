// Bus benchmark: the control round trip and the SIGKILL-to-reap-event latency, measured by a
// raw cppzmq client against a running arbiter. Run by bench/run.py, which starts the arbiter.
//
//   bus_bench CONTROL_ENDPOINT EVENTS_ENDPOINT WATCHER REQUESTS KILLS
//
// Prints one JSON object: {"round_trip_us": [...], "kill_to_reap_us": [...]}.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

Json call(zmq::socket_t& dealer, const Json& request) {
  dealer.send(zmq::buffer(request.dump()), zmq::send_flags::none);
  zmq::message_t reply;
  zmq::pollitem_t item{static_cast<void*>(dealer), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::seconds(10)) == 0 || !dealer.recv(reply)) {
    std::fprintf(stderr, "bus_bench: no reply to %s\n", request.dump().c_str());
    std::exit(1);
  }
  return Json::parse(reply.to_string_view());
}

// The next event whose topic is `topic` (and, when given, whose process_pid is `pid`).
Json wait_event(zmq::socket_t& sub, const std::string& topic, pid_t pid = 0) {
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    zmq::pollitem_t item{static_cast<void*>(sub), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
    zmq::message_t t, payload;
    if (!sub.recv(t) || !sub.recv(payload)) continue;
    if (t.to_string_view() != topic) continue;
    Json data = Json::parse(payload.to_string_view());
    if (pid == 0 || data.value("process_pid", 0) == pid) return data;
  }
  std::fprintf(stderr, "bus_bench: no %s event\n", topic.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: bus_bench CONTROL EVENTS WATCHER REQUESTS KILLS\n");
    return 2;
  }
  std::string watcher = argv[3];
  int requests = std::atoi(argv[4]), kills = std::atoi(argv[5]);
  zmq::context_t ctx(1);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer), sub(ctx, zmq::socket_type::sub);
  dealer.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::linger, 0);
  dealer.connect(argv[1]);
  sub.set(zmq::sockopt::subscribe, "watcher." + watcher + ".");
  sub.connect(argv[2]);

  Json out = {{"round_trip_us", Json::array()}, {"kill_to_reap_us", Json::array()}};
  Json status = {{"id", "b"}, {"command", "status"}, {"properties", {{"name", watcher}}}};
  for (int i = 0; i < 50; ++i) call(dealer, status);  // warm up: connection, caches
  for (int i = 0; i < requests; ++i) {
    auto t0 = Clock::now();
    call(dealer, status);
    out["round_trip_us"].push_back(micros(Clock::now() - t0));
  }

  // The subscription is live once an event we caused arrives: restart one process.
  Json list = {{"id", "l"}, {"command", "list"}, {"properties", {{"name", watcher}}}};
  pid_t victim = call(dealer, list)["pids"][0].get<pid_t>();
  ::kill(victim, SIGKILL);
  wait_event(sub, "watcher." + watcher + ".spawn");
  for (int i = 0; i < kills; ++i) {
    victim = call(dealer, list)["pids"][0].get<pid_t>();
    auto t0 = Clock::now();
    ::kill(victim, SIGKILL);
    wait_event(sub, "watcher." + watcher + ".reap", victim);
    out["kill_to_reap_us"].push_back(micros(Clock::now() - t0));
    wait_event(sub, "watcher." + watcher + ".spawn");
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
