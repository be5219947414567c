#include "core/secrets.h"

#include <cctype>
#include <cstring>

namespace walvault {
namespace {

constexpr std::string_view kMask = "********";

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

bool iequals_at(std::string_view text, size_t at, std::string_view word) {
  if (at + word.size() > text.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[at + i])) != word[i]) return false;
  }
  return true;
}

// Where the user info of a postgres[ql]:// URI starting at `at` ends ('@'), or npos.
size_t uri_userinfo_end(std::string_view text, size_t authority) {
  size_t at_sign = std::string_view::npos;
  for (size_t i = authority; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '/' || c == '?' || c == '#' || is_space(c)) break;
    if (c == '@') at_sign = i;  // the last '@' ends the user info (a password may hold '@')
  }
  return at_sign;
}

}  // namespace

std::string redact_secrets(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  bool in_uri = false;
  while (i < text.size()) {
    // postgresql://user:secret@host
    if (iequals_at(text, i, "postgresql://") || iequals_at(text, i, "postgres://")) {
      in_uri = true;
      const size_t authority = text.find("://", i) + 3;
      out.append(text.substr(i, authority - i));
      i = authority;
      const size_t end = uri_userinfo_end(text, authority);
      if (end != std::string_view::npos) {
        const size_t colon = text.substr(authority, end - authority).find(':');
        if (colon != std::string_view::npos) {
          out.append(text.substr(authority, colon + 1));
          out.append(kMask);
          i = end;  // '@' onwards is copied as usual
        }
      }
      continue;
    }
    // password = value, sslpassword = value (a keyword, not the middle of a word)
    const bool word_start =
        i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_');
    size_t kw = 0;
    if (word_start && iequals_at(text, i, "password")) kw = 8;
    if (word_start && iequals_at(text, i, "sslpassword")) kw = 11;
    if (kw != 0) {
      size_t j = i + kw;
      while (j < text.size() && is_space(text[j])) ++j;
      if (j < text.size() && text[j] == '=') {
        ++j;
        while (j < text.size() && is_space(text[j])) ++j;
        out.append(text.substr(i, j - i));
        if (j < text.size() && (text[j] == '\'' || text[j] == '"')) {
          const char quote = text[j];
          size_t k = j + 1;
          while (k < text.size() && text[k] != quote) k += text[k] == '\\' ? 2 : 1;
          out.push_back(quote);
          out.append(kMask);
          if (k < text.size()) out.push_back(quote);
          i = std::min(k + 1, text.size());
        } else {
          size_t k = j;
          while (k < text.size() && !is_space(text[k]) &&
                 !(in_uri && (text[k] == '&' || text[k] == '#'))) {
            k += text[k] == '\\' ? 2 : 1;
          }
          out.append(kMask);
          i = std::min(k, text.size());
        }
        continue;
      }
    }
    out.push_back(text[i]);
    ++i;
  }
  return out;
}

bool has_secrets(std::string_view text) {
  return redact_secrets(text) != text;
}

void redact_secrets_in_place(char* text) {
  const size_t n = std::strlen(text);
  const std::string redacted = redact_secrets({text, n});
  if (redacted == std::string_view(text, n)) return;
  const size_t keep = std::min(redacted.size(), n);
  std::memcpy(text, redacted.data(), keep);
  std::memset(text + keep, 0, n - keep);
}

}  // namespace walvault
