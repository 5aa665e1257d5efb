#include "trapeze/watchers/checks.hpp"

namespace trapeze::watchers {

Checks::Checks(loop::Loop& loop, std::vector<conf::CheckConfig> checks, std::vector<std::string> env,
               std::string working_dir, Callbacks callbacks)
    : loop_(loop), env_(std::move(env)), working_dir_(std::move(working_dir)), callbacks_(std::move(callbacks)) {
  for (auto& cfg : checks) {
    auto c = std::make_unique<Check>();
    c->st.name = cfg.name;
    c->st.kind = cfg.kind;
    c->st.threshold = cfg.threshold;
    c->cfg = std::move(cfg);
    checks_.push_back(std::move(c));
  }
}

void Checks::start() {
  if (running_) return;
  running_ = true;
  for (auto& c : checks_) {
    c->st.running = true;
    probe(*c);
  }
}

void Checks::stop() {
  running_ = false;
  for (auto& c : checks_) {
    c->st.running = false;
    c->probe.reset();
    c->timer.reset();
  }
}

std::vector<CheckStatus> Checks::status() const {
  std::vector<CheckStatus> out;
  for (const auto& c : checks_) out.push_back(c->st);
  return out;
}

void Checks::probe(Check& c) {
  ProbeSpec spec = probe_spec(c.cfg.kind, c.cfg.target, c.cfg.http_body, c.cfg.timeout, env_, working_dir_);
  Check* cp = &c;
  c.probe = start_probe(loop_, spec, [this, cp](std::optional<std::string> error) {
    // This probe is over: freed after this call (we are inside it).
    loop_.defer([done = std::shared_ptr<Probe>(std::move(cp->probe))] {});
    on_result(*cp, std::move(error));
  });
}

void Checks::on_result(Check& c, std::optional<std::string> error) {
  ++c.st.probes;
  if (!error) {
    c.st.failures = 0;
    c.st.last_error.clear();
    if (c.st.down) {
      c.st.down = false;
      if (callbacks_.on_recovered) callbacks_.on_recovered(c.st.name);
    }
  } else {
    ++c.st.failures;
    c.st.last_error = *error;
    if (!c.st.down && c.st.failures >= c.st.threshold) {
      c.st.down = true;
      if (callbacks_.on_failed) callbacks_.on_failed(c.st.name, c.st.failures, *error);
    }
  }
  if (!running_) return;  // a callback may have stopped us
  Check* cp = &c;
  c.timer = loop_.after(c.cfg.period, [this, cp] { probe(*cp); });
}

}  // namespace trapeze::watchers
