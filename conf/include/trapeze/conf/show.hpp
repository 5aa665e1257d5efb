// The normalized config, for `trapeze check`: every effective value, defaults included, in
// the native format's own schema. The TOML text loads back to the same model.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "trapeze/conf/config.hpp"

namespace trapeze::conf {

/// The config as a JSON object with the TOML format's tables and keys: durations as "30s",
/// signals as "SIGTERM", modes as "022". circus [plugin:*] sections are not part of it.
nlohmann::ordered_json to_json(const Config& config);

/// One watcher's options, as in the "watchers" table of to_json (circus's `options` command).
nlohmann::ordered_json to_json(const WatcherConfig& watcher);

/// The same, written as TOML.
std::string to_toml(const Config& config);

/// "500ms", "30s", "2m30s": the form the loaders read.
std::string format_duration(Duration d);
/// "SIGTERM" for 15, "SIGRTMIN+2", or the number as text.
std::string signal_name(int signum);

}  // namespace trapeze::conf
