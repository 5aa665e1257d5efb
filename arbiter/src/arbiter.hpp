// The arbiter: owns the loop, the watchers and the output writer; starts watchers by priority
// group, each group once the previous one is active; stops them in reverse; reloads on SIGHUP.
//
// Threads: everything on the loop thread (the one that calls run()).
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "trapeze/conf/config.hpp"
#include "trapeze/loop/loop.hpp"
#include "trapeze/watchers/output.hpp"
#include "trapeze/watchers/watcher.hpp"

namespace trapeze::arbiter {

class Arbiter final : public watchers::WatcherHost {
 public:
  /// `events_file`: where to append every event as a JSON line (empty: nowhere).
  /// Throws std::system_error when the loop or the signal fd cannot be made.
  Arbiter(conf::Config config, std::string events_file);
  ~Arbiter() override;

  /// Starts the autostart watchers and runs the loop until the arbiter stopped. Returns the
  /// exit code: 0 after an orderly stop.
  int run();

  void publish(const std::string& watcher, const std::string& event, nlohmann::json payload) override;
  void state_changed(const std::string& watcher) override;

 private:
  enum class Phase { starting, running, stopping };

  using Group = std::vector<std::string>;
  std::vector<Group> priority_groups(bool autostart_only) const;
  void add_watcher(const conf::WatcherConfig& cfg);
  void start_next_group();
  void stop_next_group();
  void shutdown();
  void reload();
  void on_signal();
  void reap_strays();
  void publish_topic(const std::string& topic, nlohmann::json payload);
  watchers::Watcher* find(const std::string& name);

  conf::Config config_;
  loop::Loop loop_;
  watchers::OutputWriter output_;
  watchers::WatcherContext ctx_;
  std::map<std::string, std::unique_ptr<watchers::Watcher>> watchers_;
  Phase phase_ = Phase::starting;
  std::vector<Group> groups_;  // of the start or stop in progress
  std::size_t group_ = 0;
  loop::Timer group_delay_;
  // Reload: what to do with a watcher once it stopped (replace its config, or remove it).
  std::map<std::string, std::unique_ptr<conf::WatcherConfig>> after_stop_;
  loop::UniqueFd signal_fd_;
  loop::FdWatch signal_watch_;
  std::FILE* events_ = nullptr;
  std::uint64_t seq_ = 0;
  int exit_code_ = 0;
};

}  // namespace trapeze::arbiter
