// The fuzz targets' bodies: one function per entry point that takes untrusted bytes. The
// libFuzzer executables (fuzz/main.cpp, TRAPEZE_FUZZ=ON, clang) and the regression test
// (tests/fuzz, any compiler) call the same functions, so an input kept in fuzz/regressions/
// fails CI even where libFuzzer cannot be built.
//
// Each function accepts the errors its entry point documents (ConfigError, a RequestError,
// QueueError) and checks what must hold for any input. A broken property throws
// PropertyBroken (libFuzzer reports the uncaught exception as a crash); a crash, UB or a leak
// is the sanitizers' to report.
#pragma once

#include <stdexcept>
#include <string_view>

namespace trapeze::fuzz {

class PropertyBroken : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// conf::load_ini_text, includes not followed, hooks not resolved; a config that loads must
/// render (to_json, to_toml) and its TOML must load back to the same model.
void ini(std::string_view input);
/// conf::load_toml_text, with the same checks.
void toml(std::string_view input);
/// ctl::parse_request, then the reply the arbiter's control server sends: the error reply for
/// a refused frame, an ok reply echoing the properties for a valid one. The reply must be
/// valid UTF-8 JSON carrying the request's id.
void control(std::string_view input);
/// juju::DispatchQueue reading `input` as its file. A queue that loads must keep working:
/// push and pop are written and read back to the same entries.
void queue(std::string_view input);

}  // namespace trapeze::fuzz
