#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "arbiter.hpp"
#include "system.hpp"
#include "trapeze/arbiter/run.hpp"
#include "trapeze/conf/load.hpp"
#include "trapeze/conf/paths.hpp"

namespace trapeze::arbiter {
namespace {

// A closed 0, 1 or 2 would be taken by the next fd we open, and a child would get a pipe of
// ours as its stdin: fill them with /dev/null first.
void ensure_standard_fds() {
  for (int fd = 0; fd < 3; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) continue;
    int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0 && null_fd != fd) {
      dup2(null_fd, fd);
      ::close(null_fd);
    }
  }
}

spdlog::level::level_enum level_of(const std::string& name) {
  if (name == "debug") return spdlog::level::debug;
  if (name == "warning" || name == "warn") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  if (name == "critical") return spdlog::level::critical;
  return spdlog::level::info;
}

void set_up_logging(const std::string& level, const std::string& output) {
  std::shared_ptr<spdlog::logger> logger;
  if (output.empty() || output == "-") {
    logger = std::make_shared<spdlog::logger>("trapeze", std::make_shared<spdlog::sinks::stderr_sink_st>());
  } else {
    logger = std::make_shared<spdlog::logger>("trapeze",
                                              std::make_shared<spdlog::sinks::basic_file_sink_st>(output));
  }
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
  logger->set_level(level_of(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace

int run(const RunOptions& options) {
  ensure_standard_fds();
  // Block the signals the loop reads from its signalfd, before any thread exists: threads
  // inherit the mask, so none of them takes a signal meant for the loop. Children get an
  // empty mask (spawn.cpp). A write to a closed pipe or socket is an error, not a death; so is
  // a write past RLIMIT_FSIZE (EFBIG): our log or events file at its limit must not kill the
  // supervisor of everything. Children get both back at their default (spawn.cpp).
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);

  conf::Config config;
  try {
    config = conf::load(options.config, conf::LoadOptions::from_process());
  } catch (const conf::ConfigError& e) {
    for (const auto& d : e.diagnostics()) std::cerr << to_string(d) << '\n';
    return 2;
  }
  // Plugins are opened now, in the foreground, so a missing symbol or a wrong ABI is a config
  // error with its file:line, before anything starts.
  {
    hooks::PluginLoader loader;
    std::vector<conf::Diagnostic> unusable;
    for (const auto& w : config.watchers)
      for (auto& d : watchers::load_hook_plugins(w, loader, watchers::IsolatedCheck::in_host))
        unusable.push_back(std::move(d));
    for (const auto& d : unusable) std::cerr << to_string(d) << '\n';
    if (!unusable.empty()) return 2;
  }
  if (geteuid() == 0)
    for (auto& d : conf::root_warnings(config)) config.warnings.push_back(std::move(d));
  for (const auto& d : config.warnings) std::cerr << to_string(d) << '\n';

  std::string log_output = options.log_file.empty() ? config.arbiter.logoutput : options.log_file;
  std::string log_level = options.log_level.empty() ? config.arbiter.loglevel : options.log_level;

  std::optional<PidfileLock> lock;
  std::string pidfile;
  try {
    pidfile = !options.pidfile.empty()          ? options.pidfile
              : !config.arbiter.pidfile.empty() ? config.arbiter.pidfile
                                                : conf::runtime_base(options.config, true) + ".pid";
    pid_t holder = 0;
    lock = PidfileLock::acquire(pidfile, holder);
    if (!lock) {
      std::cerr << "trapeze: an arbiter already runs for " << options.config << " (pid " << holder
                << ", pidfile " << pidfile << ")\n";
      return options.daemon ? 0 : 1;
    }
    if (options.daemon) daemonize(log_output, lock->fd());
    lock->write_pid();
  } catch (const std::exception& e) {
    std::cerr << "trapeze: " << e.what() << '\n';
    if (options.daemon) daemon_failed(e.what());
    return 1;
  }
  if (config.arbiter.umask) umask(*config.arbiter.umask);

  int rc = 1;
  try {
    set_up_logging(log_level, options.daemon ? "-" : log_output);  // a daemon's stderr is the log file
    Arbiter arbiter(std::move(config), options.events_file);
    daemon_ready();
    rc = arbiter.run();
  } catch (const std::exception& e) {
    spdlog::critical("arbiter: {}", e.what());
    daemon_failed(e.what());
    rc = 1;
  }
  lock->remove();
  return rc;
}

}  // namespace trapeze::arbiter
