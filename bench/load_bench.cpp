// Control load benchmark: CLIENTS DEALER clients, each on its own thread, send COMMANDS
// commands one after another (status, list NAME, stats NAME in turn) to a running arbiter.
// Run by bench/run.py, which starts the arbiter with its crash-looping watcher.
//
//   load_bench CONTROL_ENDPOINT CLIENTS COMMANDS LIST_WATCHER STATS_WATCHER
//
// Prints one JSON object: {"sent", "answered", "ok", "seconds", "round_trip_us": [...]}.
// A command without a reply in 30 s counts as unanswered; the client then goes on.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Tally {
  long sent = 0, answered = 0, ok = 0;
  std::vector<double> us;
};

void client(const std::string& endpoint, int index, int commands, const std::string& list_watcher,
            const std::string& stats_watcher, Tally& t) {
  zmq::context_t ctx(1);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(endpoint);
  t.us.reserve(static_cast<std::size_t>(commands));
  for (int i = 0; i < commands; ++i) {
    Json props = i % 3 == 0 ? Json::object() : Json{{"name", i % 3 == 1 ? list_watcher : stats_watcher}};
    static const char* const kinds[] = {"status", "list", "stats"};
    std::string id = std::to_string(index) + "-" + std::to_string(i);
    Json req = {{"id", id}, {"command", kinds[i % 3]}, {"properties", props}};
    auto t0 = Clock::now();
    dealer.send(zmq::buffer(req.dump()), zmq::send_flags::none);
    ++t.sent;
    // Replies to earlier, timed-out commands may still come: skip them.
    for (;;) {
      zmq::pollitem_t item{static_cast<void*>(dealer), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::seconds(30)) == 0) break;
      zmq::message_t reply;
      if (!dealer.recv(reply)) break;
      Json r = Json::parse(reply.to_string_view(), nullptr, false);
      if (r.is_discarded() || r.value("id", "") != id) continue;
      t.us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      ++t.answered;
      if (r.value("status", "") == "ok") ++t.ok;
      break;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: load_bench CONTROL CLIENTS COMMANDS LIST_WATCHER STATS_WATCHER\n");
    return 2;
  }
  int clients = std::atoi(argv[2]), commands = std::atoi(argv[3]);
  std::vector<Tally> tallies(static_cast<std::size_t>(clients));
  std::vector<std::thread> threads;
  auto t0 = Clock::now();
  for (int c = 0; c < clients; ++c)
    threads.emplace_back(client, std::string(argv[1]), c, commands, std::string(argv[4]), std::string(argv[5]),
                         std::ref(tallies[static_cast<std::size_t>(c)]));
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  Json out = {{"sent", 0}, {"answered", 0}, {"ok", 0}, {"seconds", seconds}, {"round_trip_us", Json::array()}};
  for (auto& t : tallies) {
    out["sent"] = out["sent"].get<long>() + t.sent;
    out["answered"] = out["answered"].get<long>() + t.answered;
    out["ok"] = out["ok"].get<long>() + t.ok;
    for (double us : t.us) out["round_trip_us"].push_back(us);
  }
  std::printf("%s\n", out.dump().c_str());
  return out["answered"] == out["sent"] ? 0 : 1;
}
