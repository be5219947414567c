#pragma once
// Content-defined chunking for the object store (core/object_store.h): cut points depend on
// the bytes around them, not on their offset, so inserting or changing a few bytes in a large
// file moves at most the chunk (or two) around the change and every other chunk keeps its
// content and therefore its object.
//
// The rolling hash is a gear hash, h = (h << 1) + gear[byte], with FastCDC's "normalised"
// cut test: before the average size a stricter mask (fewer cuts), after it a looser one, so
// chunk sizes cluster around the average. Bit k of h depends on the last k+1 bytes only, so
// the masks test the high bits (a 64-byte window). No cut before min_bytes, always one at
// max_bytes. The gear table is fixed (a splitmix64 sequence): changing it would not break
// old snapshots but would stop new ones from sharing chunks with them.

#include <cstddef>
#include <cstdint>
#include <span>

namespace walvault {

struct ChunkerParams {
  size_t min_bytes = 64 * 1024;
  size_t avg_bytes = 256 * 1024;  // a power of two
  size_t max_bytes = 1024 * 1024;
};

// Length of the first chunk of data: data.size() when data is no longer than min_bytes (the
// last chunk of a file), else a cut in [min_bytes, min(max_bytes, data.size())]. Callers give
// it at least max_bytes of data unless the file ends sooner.
size_t find_chunk_cut(std::span<const std::byte> data, const ChunkerParams& params);

// The gear table entry for a byte value (exposed for tests).
uint64_t gear_value(uint8_t byte);

}  // namespace walvault
