// Where an arbiter keeps its runtime files, derived from its config: the runtime directory,
// the default pidfile and the default control and event endpoints. The arbiter and the
// `trapeze` client compute them the same way, so `trapeze -c CONFIG status` finds the
// arbiter that `trapeze run CONFIG` started.
#pragma once

#include <string>

#include "trapeze/conf/config.hpp"

namespace trapeze::conf {

/// /run/trapeze as root, else $XDG_RUNTIME_DIR/trapeze, else /tmp/trapeze-UID. With `create`,
/// made mode 0700 and checked to be ours alone (throws std::runtime_error otherwise).
std::string runtime_dir(bool create);

/// RUNTIME/STEM-HASH, HASH from the config file's absolute path: the common prefix of the
/// default pidfile (.pid), control socket (.control) and event socket (.events).
std::string runtime_base(const std::string& config_path, bool create);

/// The config's `endpoint`, or ipc://RUNTIME/STEM-HASH.control.
std::string control_endpoint(const Config& config, bool create);
/// The config's `pubsub_endpoint`, or ipc://RUNTIME/STEM-HASH.events.
std::string events_endpoint(const Config& config, bool create);

}  // namespace trapeze::conf
