#pragma once
// Logging to stderr: "walvault: <level>: message". Errors that end a command are not logged
// here but thrown (core/error.h) and printed once by the CLI.

#include <string>

namespace walvault::log {

enum class Level { debug = 0, info = 1, warning = 2, error = 3 };

void set_level(Level level);
Level level();
bool parse_level(const std::string& text, Level& out);

void debug(const std::string& message);
void info(const std::string& message);
void warning(const std::string& message);
void error(const std::string& message);

}  // namespace walvault::log
