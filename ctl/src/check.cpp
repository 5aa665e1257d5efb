#include <unistd.h>

#include <ostream>

#include "trapeze/conf/load.hpp"
#include "trapeze/conf/show.hpp"
#include "trapeze/ctl/cli.hpp"
#include "trapeze/hooks/host.hpp"
#include "trapeze/hooks/plugin.hpp"

namespace trapeze::ctl {

int check(const CheckOptions& options, std::ostream& out, std::ostream& err) {
  conf::Config config;
  try {
    config = conf::load(options.config, conf::LoadOptions::from_process());
  } catch (const conf::ConfigError& e) {
    for (const auto& d : e.diagnostics()) err << to_string(d) << '\n';
    return 2;
  }
  if (::geteuid() == 0)
    for (auto& d : conf::root_warnings(config)) config.warnings.push_back(std::move(d));

  // Loading runs the plugin's constructors, as `run` will; a broken plugin fails here first.
  hooks::PluginLoader loader;
  std::vector<conf::Diagnostic> errors;
  for (const auto& w : config.watchers) {
    for (const auto& [point, hook] : w.hooks) {
      if (hook.isolate) {  // loaded in a hook host, as `run` does: never in this process
        if (auto why = hooks::check_in_host(hook.library, hook.symbol))
          errors.push_back({conf::Severity::error, hook.where, "hooks." + point, *why});
        continue;
      }
      try {
        loader.load(hook.library, hook.symbol);
      } catch (const hooks::PluginError& e) {
        errors.push_back({conf::Severity::error, hook.where, "hooks." + point, e.what()});
      }
    }
  }
  for (const auto& d : errors) err << to_string(d) << '\n';
  for (const auto& d : config.warnings) err << to_string(d) << '\n';
  if (!errors.empty()) return 2;

  if (options.json)
    out << conf::to_json(config).dump(2) << '\n';
  else
    out << conf::to_toml(config);
  return 0;
}

}  // namespace trapeze::ctl
