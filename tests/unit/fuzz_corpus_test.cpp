// Every seed of the fuzz corpus (tests/fuzz/corpus/<target>/) and every input that once broke a
// parser (tests/fuzz/regressions/<target>/) is replayed through its fuzz target: the normal
// test pass proves they are handled, the sanitizer pass that they are handled without a memory
// or undefined-behaviour error. A crash found by scripts/fuzz.sh is added to regressions/ with
// its fix.

#include <gtest/gtest.h>

#include "core/fs.h"
#include "tests/fuzz/fuzz_targets.h"

namespace walvault {
namespace {

const fs::path kFuzzDir = fs::path(WALVAULT_SOURCE_DIR) / "tests/fuzz";

size_t replay(const fuzz::NamedTarget& target, const fs::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir / target.name, ec)) {
    if (!e.is_regular_file()) continue;
    const std::string input = read_file(e.path());
    SCOPED_TRACE(e.path().string());
    EXPECT_EQ(target.run(reinterpret_cast<const uint8_t*>(input.data()), input.size()), 0);
    ++n;
  }
  return n;
}

TEST(FuzzCorpus, EverySeedIsHandled) {
  for (const auto& target : fuzz::kTargets) {
    SCOPED_TRACE(std::string(target.name));
    EXPECT_GE(replay(target, kFuzzDir / "corpus"), 2u) << "a target without seeds";
  }
}

TEST(FuzzCorpus, EveryRegressionInputIsHandled) {
  for (const auto& target : fuzz::kTargets) replay(target, kFuzzDir / "regressions");
}

TEST(FuzzCorpus, EmptyAndTinyInputs) {
  const uint8_t bytes[] = {0, 'w', 'k', 0xff, '\n'};
  for (const auto& target : fuzz::kTargets) {
    for (size_t n = 0; n <= sizeof bytes; ++n) EXPECT_EQ(target.run(bytes, n), 0);
  }
}

}  // namespace
}  // namespace walvault
