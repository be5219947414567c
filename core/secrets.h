#pragma once
// Passwords in connection strings. libpq takes them from PGPASSWORD, ~/.pgpass, PGPASSFILE or
// a passfile= keyword (docs/security.md); a password written into --dbname works too, but
// walvault makes sure it never travels further: every message it prints (errors, hints, log
// lines, libpq's own messages) goes through redact_secrets, and main() blanks it in the
// process's argv so that ps and /proc/<pid>/cmdline do not show it.

#include <string>
#include <string_view>

namespace walvault {

// Replaces every secret in text by "********": the value of a password= or sslpassword=
// keyword (plain or quoted, in a keyword/value string or a URI's query) and the password of a
// URI's user info ("postgresql://user:secret@host"). Everything else is kept as it is.
std::string redact_secrets(std::string_view text);

// True when text holds something redact_secrets would replace.
bool has_secrets(std::string_view text);

// Overwrites a C string in place with its redacted form (cut to the original length, the rest
// zeroed): for argv, whose memory is what ps reads.
void redact_secrets_in_place(char* text);

}  // namespace walvault
