#pragma once
// Where S3 credentials come from, in the order the AWS tools use: the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then the shared credentials
// file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials) for the profile AWS_PROFILE
// (else "default"). The secret never appears in an error message.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "objectstore/sigv4.h"

namespace walvault::s3 {

using GetEnv = std::function<std::optional<std::string>(const char*)>;

// The process environment.
std::optional<std::string> process_env(const char* name);

// Throws Error (with a hint naming both places) when neither holds a complete pair.
Credentials load_credentials(const GetEnv& env = process_env);

// One profile of an INI-style credentials file; nullopt when the profile is absent.
// Throws Error naming the file and line for a malformed line.
std::optional<Credentials> credentials_from_file(std::string_view text, std::string_view profile,
                                                 std::string_view file_name);

}  // namespace walvault::s3
