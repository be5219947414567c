#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "core/secrets.h"

namespace walvault::log {
namespace {

std::atomic<Level> g_level{Level::info};
std::mutex g_mutex;

void emit(Level lvl, const char* tag, const std::string& message) {
  if (lvl < g_level.load()) return;
  char stamp[32];
  std::time_t now = std::time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::lock_guard lock(g_mutex);
  std::fprintf(stderr, "%s walvault: %s: %s\n", stamp, tag, redact_secrets(message).c_str());
}

}  // namespace

void set_level(Level l) {
  g_level = l;
}
Level level() {
  return g_level;
}

bool parse_level(const std::string& text, Level& out) {
  if (text == "debug")
    out = Level::debug;
  else if (text == "info")
    out = Level::info;
  else if (text == "warning")
    out = Level::warning;
  else if (text == "error")
    out = Level::error;
  else
    return false;
  return true;
}

void debug(const std::string& m) {
  emit(Level::debug, "debug", m);
}
void info(const std::string& m) {
  emit(Level::info, "info", m);
}
void warning(const std::string& m) {
  emit(Level::warning, "warning", m);
}
void error(const std::string& m) {
  emit(Level::error, "error", m);
}

}  // namespace walvault::log
