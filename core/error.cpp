#include "core/error.h"

#include <cstring>

namespace walvault {

Error errno_error(const std::string& what, int errnum, std::string hint) {
  if (hint.empty() && errnum == ENOSPC)
    hint = "free space on the file system, then run the command again";
  return Error(what + ": " + std::strerror(errnum), std::move(hint));
}

}  // namespace walvault
