#include "trapeze/conf/paths.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

namespace trapeze::conf {

std::string runtime_dir(bool create) {
  std::string dir;
  if (geteuid() == 0) {
    dir = "/run/trapeze";
  } else if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
    dir = std::string(xdg) + "/trapeze";
  } else {
    dir = fmt::format("/tmp/trapeze-{}", geteuid());
  }
  if (!create) return dir;
  if (mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST)
    throw std::runtime_error(fmt::format("cannot create '{}': {}", dir, std::strerror(errno)));
  struct stat st {};
  if (lstat(dir.c_str(), &st) < 0)
    throw std::runtime_error(fmt::format("cannot stat '{}': {}", dir, std::strerror(errno)));
  // In /tmp anyone could have made it first: refuse a directory that is not ours alone.
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0)
    throw std::runtime_error(
        fmt::format("cannot use '{}': not a directory owned by uid {} with mode 0700", dir, geteuid()));
  return dir;
}

std::string runtime_base(const std::string& config_path, bool create) {
  std::error_code ec;
  std::string absolute = std::filesystem::weakly_canonical(config_path, ec).string();
  if (ec) absolute = std::filesystem::absolute(config_path).string();
  // FNV-1a: the same config path always maps to the same names.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : absolute) h = (h ^ c) * 1099511628211ull;
  std::string stem = std::filesystem::path(absolute).stem().string();
  if (stem.size() > 32) stem.resize(32);  // ipc paths must fit in sun_path (108 bytes)
  return fmt::format("{}/{}-{:08x}", runtime_dir(create), stem, static_cast<std::uint32_t>(h));
}

std::string control_endpoint(const Config& config, bool create) {
  if (!config.arbiter.endpoint.empty()) return config.arbiter.endpoint;
  return "ipc://" + runtime_base(config.path, create) + ".control";
}

std::string events_endpoint(const Config& config, bool create) {
  if (!config.arbiter.pubsub_endpoint.empty()) return config.arbiter.pubsub_endpoint;
  return "ipc://" + runtime_base(config.path, create) + ".events";
}

}  // namespace trapeze::conf
