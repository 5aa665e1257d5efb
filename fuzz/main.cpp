// libFuzzer's entry: TRAPEZE_FUZZ_ENTRY names the function of targets.hpp this executable fuzzes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  trapeze::fuzz::TRAPEZE_FUZZ_ENTRY(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
