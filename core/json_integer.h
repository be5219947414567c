#pragma once
// Checked reads of integer fields of outside JSON (backup_manifest, metadata).

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/json.h"

namespace walvault {

// An integer field of outside JSON, checked: nlohmann's get<unsigned>() converts a float such
// as 1e30 (what a 25-digit number parses to) with undefined behaviour (found by fuzzing).
// Throws std::invalid_argument naming the field when it is not an integer in range.
template <typename T>
T json_integer(const Json& value, const char* name) {
  static_assert(std::numeric_limits<T>::is_integer);
  if (value.is_number_unsigned()) {
    const auto v = value.get<std::uint64_t>();
    if (v <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(v);
  } else if (value.is_number_integer()) {
    const auto v = value.get<std::int64_t>();
    if (v >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
        (v < 0 || static_cast<std::uint64_t>(v) <=
                      static_cast<std::uint64_t>(std::numeric_limits<T>::max()))) {
      return static_cast<T>(v);
    }
  }
  throw std::invalid_argument(std::string("\"") + name + "\" is not an integer in range");
}
}  // namespace walvault
