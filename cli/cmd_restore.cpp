#include "cli/commands.h"
#include "core/error.h"

namespace walvault::cli {
int run_restore(const Args&) { throw Error("not implemented yet"); }
}  // namespace walvault::cli
