// trapeze/hook.hpp: an optional C++17 layer over <trapeze/hook.h>. A hook written with
// TRAPEZE_HOOK returns Result::proceed or Result::veto and may throw: an exception becomes
// TRAPEZE_HOOK_ERROR with what() as the message, so none crosses the C boundary.
//
//   #include <trapeze/hook.hpp>
//   TRAPEZE_PLUGIN();
//   TRAPEZE_HOOK(check_schema) {
//     auto dsn = call.option("dsn").value_or("postgres://localhost/app");
//     if (!schema_is_current(dsn)) return trapeze::plugin::Result::veto;
//     return trapeze::plugin::Result::proceed;
//   }
#ifndef TRAPEZE_HOOK_HPP
#define TRAPEZE_HOOK_HPP

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "trapeze/hook.h"

namespace trapeze::plugin {

enum class Result { proceed, veto };

/// The call, with C++ types. Valid only during the hook; copy what you keep.
class Call {
 public:
  explicit Call(const trapeze_hook_call* c) : c_(c) {}

  std::string_view hook() const { return c_->hook_name; }
  std::string_view watcher() const { return c_->watcher_name; }
  std::int64_t pid() const { return c_->pid; }
  int signum() const { return c_->signum; }
  int exit_status() const { return c_->exit_status; }

  /// hooks.NAME.options.KEY
  std::optional<std::string> option(const char* key) const { return wrap(c_->hook_option(c_, key)); }
  /// The watcher's option KEY, as text.
  std::optional<std::string> watcher_option(const char* key) const {
    return wrap(c_->watcher_option(c_, key));
  }
  void log(trapeze_log_level level, const std::string& message) const { c_->log(c_, level, message.c_str()); }
  void info(const std::string& message) const { log(TRAPEZE_LOG_INFO, message); }
  void warning(const std::string& message) const { log(TRAPEZE_LOG_WARNING, message); }
  /// True once the hook timed out or the arbiter is stopping: return soon.
  bool cancelled() const { return c_->cancelled(c_) != 0; }

  const trapeze_hook_call* raw() const { return c_; }

 private:
  static std::optional<std::string> wrap(const char* s) {
    if (s == nullptr) return std::nullopt;
    return std::string(s);
  }
  const trapeze_hook_call* c_;
};

/// Runs `fn`, turning its result or exception into the C result.
template <typename Fn>
trapeze_hook_result invoke(const trapeze_hook_call* c, Fn fn) noexcept {
  try {
    Call call(c);
    return fn(call) == Result::proceed ? TRAPEZE_HOOK_CONTINUE : TRAPEZE_HOOK_VETO;
  } catch (const std::exception& e) {
    c->set_error(c, e.what());
  } catch (...) {
    c->set_error(c, "unknown C++ exception");
  }
  return TRAPEZE_HOOK_ERROR;
}

}  // namespace trapeze::plugin

/// Defines the exported hook SYMBOL; the braces that follow are its body, with
/// `const trapeze::plugin::Call& call` in scope.
#define TRAPEZE_HOOK(symbol)                                                                  \
  static ::trapeze::plugin::Result symbol##_body(const ::trapeze::plugin::Call& call);       \
  extern "C" TRAPEZE_EXPORT trapeze_hook_result symbol(const trapeze_hook_call* c) {         \
    return ::trapeze::plugin::invoke(c, [](const ::trapeze::plugin::Call& k) { return symbol##_body(k); }); \
  }                                                                                           \
  static ::trapeze::plugin::Result symbol##_body(const ::trapeze::plugin::Call& call)

#endif  // TRAPEZE_HOOK_HPP
