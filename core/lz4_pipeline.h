#pragma once
// Decoding an lz4 file on a second thread while the caller consumes the content: restore
// spends its time in two places, lz4 decoding and writing files, and on a machine with
// more than one core the two overlap. The queue between them is bounded (a few MiB), so
// memory does not grow with the file.

#include <functional>
#include <span>

#include "core/fs.h"

namespace walvault {

// Like decode_lz4_file, but decodes on a worker thread; on_content runs on the calling
// thread, in order. An exception from either side stops both and is rethrown here.
void decode_lz4_file_pipelined(const fs::path& path,
                               const std::function<void(std::span<const std::byte>)>& on_content);

}  // namespace walvault
