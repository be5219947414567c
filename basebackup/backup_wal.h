#pragma once
// Is the WAL a base backup needs in the repository? A backup is only restorable with every
// byte of WAL from its start LSN (the checkpoint's redo point) up to its stop LSN (the
// consistency point), so `walvault backup` marks a backup complete only when this holds.

#include <chrono>
#include <functional>
#include <optional>

#include "core/lsn.h"
#include "core/repository.h"

namespace walvault {

// The first LSN in [start, stop) that the repository does not hold, or nullopt when all
// of it is archived (complete segments, or the verified prefix of a `.partial`).
// WAL of start_tli and stop_tli counts (they differ only when the server being backed up
// was promoted during the backup; its new timeline then continues the old one's WAL).
std::optional<Lsn> first_missing_wal(const Repository& repo, TimelineId start_tli,
                                     TimelineId stop_tli, Lsn start, Lsn stop);

// Polls first_missing_wal until nothing is missing (true) or the timeout passes (false).
// A stop request ends the wait with an Error.
bool wait_for_wal(const Repository& repo, TimelineId start_tli, TimelineId stop_tli, Lsn start,
                  Lsn stop, std::chrono::milliseconds timeout,
                  const std::function<bool()>& stop_requested = {});

}  // namespace walvault
