#pragma once
// One exception type for everything that ends a command. It carries the exit code the
// CLI returns, the one-line message ("walvault: error: <what>") and an optional hint.
// Bugs are asserts; expected local outcomes are return values.

#include <stdexcept>
#include <string>

namespace walvault {

enum class ExitCode : int {
  ok = 0,
  failure = 1,
  usage = 2,
  unreachable = 3,  // the requested recovery target cannot be reached from the repository
};

class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string hint = {}, ExitCode code = ExitCode::failure)
      : std::runtime_error(std::move(message)), hint_(std::move(hint)), code_(code) {}
  const std::string& hint() const { return hint_; }
  ExitCode code() const { return code_; }

 private:
  std::string hint_;
  ExitCode code_;
};

inline Error usage_error(std::string message, std::string hint = {}) {
  return Error(std::move(message), std::move(hint), ExitCode::usage);
}

inline Error unreachable_error(std::string message, std::string hint = {}) {
  return Error(std::move(message), std::move(hint), ExitCode::unreachable);
}

// "<what>: <strerror(errnum)>" as an Error.
Error errno_error(const std::string& what, int errnum, std::string hint = {});

}  // namespace walvault
