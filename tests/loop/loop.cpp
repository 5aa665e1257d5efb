// The event loop: timers in order, cancellation from inside callbacks, posted work from other
// threads, fd watches removed while their events are pending.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "trapeze/loop/loop.hpp"

using namespace trapeze::loop;
using namespace std::chrono_literals;

TEST_CASE("timers fire in deadline order, not in creation order", "[unit][loop]") {
  Loop loop;
  std::vector<int> order;
  auto now = Clock::now();
  Timer c = loop.at(now + 30ms, [&] { order.push_back(3); });
  Timer a = loop.at(now + 10ms, [&] { order.push_back(1); });
  Timer b = loop.at(now + 20ms, [&] { order.push_back(2); });
  Timer done = loop.at(now + 40ms, [&] { loop.stop(); });
  loop.run();
  CHECK(order == std::vector<int>{1, 2, 3});
  CHECK_FALSE(a.pending());
}

TEST_CASE("a timer reset before it fires never runs, even from another timer's callback", "[unit][loop]") {
  Loop loop;
  bool ran = false;
  auto now = Clock::now();
  Timer victim;
  Timer killer = loop.at(now + 5ms, [&] { victim.reset(); });
  victim = loop.at(now + 5ms, [&] { ran = true; });  // due in the same batch
  Timer done = loop.at(now + 20ms, [&] { loop.stop(); });
  loop.run();
  CHECK_FALSE(ran);
}

TEST_CASE("a destroyed Timer handle cancels its timer", "[unit][loop]") {
  Loop loop;
  bool ran = false;
  { Timer t = loop.after(1ms, [&] { ran = true; }); }
  Timer done = loop.after(20ms, [&] { loop.stop(); });
  loop.run();
  CHECK_FALSE(ran);
}

TEST_CASE("work posted from other threads runs on the loop, in order", "[unit][loop]") {
  Loop loop;
  std::vector<int> seen;
  std::thread::id loop_thread = std::this_thread::get_id();
  bool on_loop = true;
  std::thread poster([&] {
    for (int i = 0; i < 1000; ++i)
      loop.post([&, i] {
        seen.push_back(i);
        on_loop = on_loop && std::this_thread::get_id() == loop_thread;
        if (i == 999) loop.stop();
      });
  });
  loop.run();
  poster.join();
  REQUIRE(seen.size() == 1000);
  for (int i = 0; i < 1000; ++i) CHECK(seen[static_cast<std::size_t>(i)] == i);
  CHECK(on_loop);
  CHECK(loop.stats().posted == 1000);
}

TEST_CASE("an fd watch removed by an earlier callback of the same batch is not called", "[unit][loop]") {
  Loop loop;
  int p1[2], p2[2];
  REQUIRE(pipe(p1) == 0);
  REQUIRE(pipe(p2) == 0);
  REQUIRE(write(p1[1], "x", 1) == 1);
  REQUIRE(write(p2[1], "x", 1) == 1);
  int calls = 0;
  FdWatch w1, w2;
  // Whichever runs first removes the other.
  w1 = loop.watch(p1[0], EPOLLIN, [&](std::uint32_t) { ++calls; w2.reset(); w1.reset(); });
  w2 = loop.watch(p2[0], EPOLLIN, [&](std::uint32_t) { ++calls; w1.reset(); w2.reset(); });
  Timer done = loop.after(20ms, [&] { loop.stop(); });
  loop.run();
  CHECK(calls == 1);
  for (int fd : {p1[0], p1[1], p2[0], p2[1]}) close(fd);
}

TEST_CASE("an idle loop sleeps: no iteration without an event", "[unit][loop]") {
  Loop loop;
  Timer done = loop.after(200ms, [&] { loop.stop(); });
  loop.run();
  // One wake-up for the timer; none in between.
  CHECK(loop.stats().iterations == 1);
}
