#include "objectstore/s3_credentials.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace walvault::s3 {
namespace {

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

std::optional<std::string> process_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

std::optional<Credentials> credentials_from_file(std::string_view text, std::string_view profile,
                                                 std::string_view file_name) {
  std::istringstream in{std::string(text)};
  std::string line;
  std::string section;
  bool found = false;
  Credentials c;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      if (t.back() != ']') {
        throw Error(
            std::string(file_name) + ":" + std::to_string(n) + ": unterminated section name",
            "write [PROFILE] on a line of its own");
      }
      section = trim(std::string_view(t).substr(1, t.size() - 2));
      if (section.starts_with("profile ")) section = trim(std::string_view(section).substr(8));
      if (section == profile) found = true;
      continue;
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos) {
      // The line may hold a secret: name only its number.
      throw Error(std::string(file_name) + ":" + std::to_string(n) + ": a line without '='",
                  "write KEY = VALUE");
    }
    if (section != profile) continue;
    const std::string key = trim(std::string_view(t).substr(0, eq));
    const std::string value = trim(std::string_view(t).substr(eq + 1));
    if (key == "aws_access_key_id")
      c.access_key_id = value;
    else if (key == "aws_secret_access_key")
      c.secret_access_key = value;
    else if (key == "aws_session_token")
      c.session_token = value;
  }
  if (!found) return std::nullopt;
  return c;
}

Credentials load_credentials(const GetEnv& env) {
  auto id = env("AWS_ACCESS_KEY_ID");
  auto secret = env("AWS_SECRET_ACCESS_KEY");
  if (id && secret) return {*id, *secret, env("AWS_SESSION_TOKEN").value_or("")};
  if (id || secret) {
    throw Error(std::string("only ") + (id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") +
                    " is set in the environment",
                "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither to use the "
                "credentials file");
  }
  std::string file;
  if (auto f = env("AWS_SHARED_CREDENTIALS_FILE")) {
    file = *f;
  } else if (auto home = env("HOME")) {
    file = *home + "/.aws/credentials";
  }
  const std::string profile = env("AWS_PROFILE").value_or("default");
  if (!file.empty()) {
    std::ifstream in(file);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      if (auto c = credentials_from_file(ss.str(), profile, file)) {
        if (c->access_key_id.empty() || c->secret_access_key.empty()) {
          throw Error("profile \"" + profile + "\" in " + file +
                          " lacks aws_access_key_id or aws_secret_access_key",
                      "add both keys to the profile");
        }
        return *c;
      }
    }
  }
  throw Error("no S3 credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set and " +
                  (file.empty() ? std::string("no credentials file was found")
                                : "profile \"" + profile + "\" is not in " + file),
              "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write them to "
              "~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE choose another)");
}

}  // namespace walvault::s3
