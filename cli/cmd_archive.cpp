#include "cli/commands.h"
#include "core/error.h"

namespace walvault::cli {
int run_archive(const Args&) { throw Error("not implemented yet"); }
}  // namespace walvault::cli
