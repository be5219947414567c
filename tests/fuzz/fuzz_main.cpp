// One libFuzzer binary per target: WALVAULT_FUZZ_TARGET names the function
// (tests/fuzz/CMakeLists.txt).
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return walvault::fuzz::WALVAULT_FUZZ_TARGET(data, size);
}
