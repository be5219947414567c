// walvault service: options (service/service_config.h) and signals; the work is
// service/service.h. SIGTERM/SIGINT stop everything cleanly, SIGHUP re-reads the config
// (an invalid one is logged and the running configuration kept).

#include <signal.h>

#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "service/service.h"

namespace walvault::cli {
namespace {

// Blocked in every thread (the service's threads inherit the mask): only sigtimedwait in
// this thread takes them, so no job is interrupted inside a system call.
sigset_t service_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

int run_service(const Args& args) {
  std::optional<ServiceConfig> config = load_service_config(args, std::cout);
  if (!config) return 0;
  if (config->check_only) {
    for (const auto& line : describe(*config)) std::cout << line << "\n";
    std::cout << "the configuration is valid\n";
    return 0;
  }
  log::set_level(config->log_level);
  const sigset_t signals = service_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Service service(std::move(*config));
  log::info("walvault service " WALVAULT_VERSION " starting (pid " + std::to_string(::getpid()) +
            ")");
  service.start();
  for (;;) {
    const timespec timeout{1, 0};
    const int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT) {
      log::info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                ": stopping (the archiver makes what it received durable; a backup in "
                "progress is marked failed)");
      service.stop();
      log::info("stopped");
      return 0;
    }
    if (sig == SIGHUP) {
      log::info("received SIGHUP: reading the configuration again");
      try {
        std::optional<ServiceConfig> next = load_service_config(args, std::cerr);
        if (next) service.reload(std::move(*next));
      } catch (const std::exception& e) {
        std::string message = e.what();
        if (const auto* err = dynamic_cast<const Error*>(&e); err && !err->hint().empty()) {
          message += " (HINT: " + err->hint() + ")";
        }
        log::error("the new configuration is invalid, keeping the running one: " + message);
      }
    }
    service.tick();
  }
}

}  // namespace walvault::cli
