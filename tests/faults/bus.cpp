// The bus and the control socket under pressure: a subscriber that never reads while events
// flood, and ten control clients at once while 200 processes crash-loop.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "faults.hpp"

using namespace trapeze::testing;

TEST_CASE("faults: a subscriber that never reads: the arbiter's memory stays bounded, that subscriber "
          "loses events (a seq gap), a reading one loses none",
          "[integration][faults]") {
  TempDir dir;
  constexpr int kHwm = 2000;
  Arbiter arbiter(dir, "flood.ini",
                  circus_section(dir, fmt::format("pubsub_hwm = {}\n", kHwm)) +
                      fmt::format("[watcher:flood]\ncmd = {}\nargs = exit 1\nnumprocesses = 20\nmin_uptime = 0\n"
                                  "check_flapping = false\nautostart = false\n",
                                  child()));
  EventTail tail(events_file(dir));
  Client control(control_endpoint(dir));
  REQUIRE(wait_until([&] { return control.raw(R"({"id":"p","command":"list"})", 1s).has_value(); }, 20s));
  // Connected and subscribed, then never read until the end.
  Subscriber stuck(events_endpoint(dir), control);
  // The reader's own queue is unbounded (rcvhwm 0): its I/O thread drains the arbiter's side
  // however late this thread reads.
  std::atomic<bool> reading{true};
  std::mutex read_mu;
  std::vector<std::uint64_t> read_seqs;  // guarded by read_mu
  auto read_so_far = [&] {
    std::lock_guard lock(read_mu);
    return read_seqs;
  };
  std::thread reader([&] {
    zmq::context_t ctx(1);
    zmq::socket_t sub(ctx, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::rcvhwm, 0);
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(events_endpoint(dir));
    while (reading) {
      zmq::pollitem_t item{static_cast<void*>(sub), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      zmq::message_t topic, payload;
      while (sub.recv(topic, zmq::recv_flags::dontwait)) {
        if (!topic.more() || !sub.recv(payload)) break;
        auto seq = Json::parse(payload.to_string_view())["seq"].get<std::uint64_t>();
        std::lock_guard lock(read_mu);
        read_seqs.push_back(seq);
      }
    }
  });
  // A failed REQUIRE must not leave the thread joinable (std::terminate, and the arbiter with it).
  struct Joiner {
    std::atomic<bool>& flag;
    std::thread& thread;
    ~Joiner() {
      flag = false;
      if (thread.joinable()) thread.join();
    }
  } joiner{reading, reader};
  // The reader is live once it has seen an event published after it connected.
  REQUIRE(wait_until(
      [&] {
        control.call("reloadconfig");
        std::this_thread::sleep_for(20ms);
        return !read_so_far().empty();
      },
      20s));

  long rss_before = rss_kib(arbiter.pid()), rss_most = rss_before;
  std::size_t reaps_before = tail.count("flood.reap");
  CHECK(control.call("start", {{"name", "flood"}})["status"] == "ok");
  constexpr std::size_t kFlood = 15000;  // reaps, so twice as many events with the spawns
  std::vector<double> ms;
  auto deadline = std::chrono::steady_clock::now() + 240s;
  while (tail.count("flood.reap") < reaps_before + kFlood && std::chrono::steady_clock::now() < deadline) {
    auto t0 = std::chrono::steady_clock::now();
    auto reply = control.raw(R"({"id":"s","command":"status","properties":{"name":"flood"}})", 10s);
    REQUIRE(reply);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    rss_most = std::max(rss_most, rss_kib(arbiter.pid()));
    std::this_thread::sleep_for(50ms);
  }
  REQUIRE(tail.count("flood.reap") >= reaps_before + kFlood);
  CHECK(control.call("stop", {{"name", "flood"}, {"waiting", true}})["status"] == "ok");
  std::size_t reloads = tail.count("arbiter.reload");
  control.call("reloadconfig");  // one last event after the flood
  tail.wait(arbiter, "arbiter.reload", reloads + 1, 10s);
  std::uint64_t last = 0;
  for (auto& e : tail.poll()) last = e.data["seq"].get<std::uint64_t>();
  REQUIRE(wait_until(
      [&] {
        auto seqs = read_so_far();
        return !seqs.empty() && seqs.back() == last;
      },
      30s));
  reading = false;
  reader.join();
  (void)joiner;

  std::sort(ms.begin(), ms.end());
  INFO("arbiter RSS " << rss_before << " KiB before the flood, at most " << rss_most << " KiB during it; "
                      << ms.size() << " status round trips, max " << ms.back() << " ms");
  // The stuck subscriber's queue holds at most pubsub_hwm events of a few hundred bytes:
  // 2000 x ~300 B is under 1 MiB (measured: +0.6 MiB). A queue that grows with the flood
  // (30000 events; pubsub_hwm = 100000000) measured +12 MiB, three times the limit.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // A sanitizer's allocator (redzones, quarantine, shadow memory) would be measured instead:
  // under ASan +8 MiB bounded against +22 MiB unbounded. The plain build checks the bound.
  WARN("not checked under a sanitizer: arbiter RSS +" << rss_most - rss_before << " KiB");
#else
  CHECK(rss_most - rss_before < 4 * 1024);
#endif

  // The reader saw every event, in order, without a gap: PUB drops per subscriber.
  bool contiguous = true;
  for (std::size_t i = 1; i < read_seqs.size(); ++i)
    if (read_seqs[i] != read_seqs[i - 1] + 1) contiguous = false;
  CHECK(contiguous);
  CHECK(read_seqs.size() > 2 * kFlood);

  // The stuck one now reads what was kept for it: no more than its queues held (pubsub_hwm at
  // the arbiter, 1000 at its own rcvhwm, and what the kernel's socket buffer took), then a gap
  // up to the next event published once it reads again.
  std::vector<std::uint64_t> stuck_seqs;
  while (auto e = stuck.next(500ms)) stuck_seqs.push_back(e->data["seq"].get<std::uint64_t>());
  REQUIRE(!stuck_seqs.empty());
  control.call("reloadconfig");
  for (auto& e : stuck.until("arbiter.reload", 10s)) stuck_seqs.push_back(e.data["seq"].get<std::uint64_t>());
  last = stuck_seqs.back();
  REQUIRE(last > read_so_far().back());
  std::size_t before_gap = 1;
  while (before_gap < stuck_seqs.size() && stuck_seqs[before_gap] == stuck_seqs[before_gap - 1] + 1)
    ++before_gap;
  INFO("the stuck subscriber got " << stuck_seqs.size() << " events, " << before_gap << " before the first gap");
  CHECK(before_gap < stuck_seqs.size());  // there is a gap
  CHECK(before_gap <= static_cast<std::size_t>(kHwm) + 1000 + 4000);
  CHECK(stuck_seqs.back() == last);  // and it gets what comes after
  CHECK(arbiter.stop() == 0);
}

TEST_CASE("faults: 10 control clients x 500 commands while 200 processes crash-loop: every command "
          "answered",
          "[integration][faults]") {
  // bench/run.py load runs 10 x 10000 and reports the latencies.
  TempDir dir;
  Arbiter arbiter(dir, "load.ini",
                  circus_section(dir) + fmt::format("[watcher:crash]\ncmd = {0}\nargs = sleep 50 exit 1\n"
                                                    "numprocesses = 200\nmin_uptime = 0\ncheck_flapping = false\n"
                                                    "[watcher:steady]\ncmd = {0}\nargs = forever\nnumprocesses = 2\n",
                                                    child()));
  EventTail tail(events_file(dir));
  tail.wait(arbiter, "steady.start", 1, 60s);
  tail.wait(arbiter, "crash.reap", 200, 60s);

  constexpr int kClients = 10, kCommands = 500;
  struct Result {
    int answered = 0, ok = 0, wrong_id = 0;
    std::vector<double> ms;
  };
  std::vector<Result> results(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      Client client(control_endpoint(dir));
      Result& r = results[static_cast<std::size_t>(c)];
      for (int i = 0; i < kCommands; ++i) {
        static const char* const kinds[] = {"status", "list", "stats"};
        const char* command = kinds[i % 3];
        Json props = i % 3 == 0 ? Json::object() : Json{{"name", i % 3 == 1 ? "crash" : "steady"}};
        std::string id = fmt::format("c{}-{}", c, i);
        Json req = {{"id", id}, {"command", command}, {"properties", props}};
        auto t0 = std::chrono::steady_clock::now();
        auto reply = client.raw(req.dump(), 30s);
        if (!reply) return;  // no answer in 30 s: counted below
        r.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        ++r.answered;
        if ((*reply)["id"] != id) ++r.wrong_id;
        if ((*reply)["status"] == "ok") ++r.ok;
      }
    });
  for (auto& t : clients) t.join();

  std::vector<double> all;
  int answered = 0, ok = 0, wrong = 0;
  for (auto& r : results) {
    answered += r.answered;
    ok += r.ok;
    wrong += r.wrong_id;
    all.insert(all.end(), r.ms.begin(), r.ms.end());
  }
  std::sort(all.begin(), all.end());
  INFO(answered << " answered; median " << (all.empty() ? 0 : all[all.size() / 2]) << " ms, p99 "
                << (all.empty() ? 0 : all[all.size() * 99 / 100]) << " ms; "
                << tail.count("crash.reap") << " crash reaps so far");
  CHECK(answered == kClients * kCommands);
  CHECK(ok == kClients * kCommands);
  CHECK(wrong == 0);
  CHECK(tail.count("crash.reap") > 400);  // the crash loop did run alongside
  CHECK(arbiter.stop(SIGTERM, 60s) == 0);
}
