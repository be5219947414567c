#pragma once
// JSON comes from nlohmann/json (Debian: nlohmann-json3-dev).
#include <nlohmann/json.hpp>

namespace walvault {
using Json = nlohmann::ordered_json;
}
