// Small ASCII text helpers shared by the protocol core and the configuration.
// SMTP verbs, parameters and domains compare case-insensitively in ASCII only
// (RFC 5321 §2.4); these never depend on the locale.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::util {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
}
constexpr char ascii_upper(char c) {
  return (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c;
}

bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
std::string to_lower(std::string_view s);
std::string to_upper(std::string_view s);
std::string_view trim(std::string_view s);
std::string_view trim_right(std::string_view s);
std::vector<std::string_view> split(std::string_view s, char sep);
std::optional<std::uint64_t> parse_uint(std::string_view s);
bool is_ascii(std::string_view s);
// Well-formed UTF-8 (RFC 3629 §4): no overlong forms, no surrogates, nothing
// above U+10FFFF.
bool is_valid_utf8(std::string_view s);

// Durations like "90s", "5m", "4h", "2d", "250ms"; a bare number is seconds.
std::optional<std::uint64_t> parse_duration_ms(std::string_view s);
// Sizes like "36MB", "512KB", "10GB" (powers of 1024) or a bare number of bytes.
std::optional<std::uint64_t> parse_size(std::string_view s);

// The length of the well-formed UTF-8 sequence (RFC 3629 §4) that s starts
// with: 1 for ASCII, 2 to 4 for a multi-byte character, 0 when s is empty or
// does not start with one.
std::size_t utf8_sequence_length(std::string_view s);

// What printable() keeps as it is besides printable ASCII.
enum class Keep {
  kUtf8,   // valid UTF-8 that is not a control or a bidi/line-breaking format character
  kAscii,  // nothing else: text that must stay ASCII (a DSN's diagnostic)
  kJson,   // every valid character, controls too: the JSON encoder escapes those itself
};
constexpr std::size_t kNoLimit = static_cast<std::size_t>(-1);

// The one way tern shows bytes from outside (a client, a peer, DNS, the
// spool) to a person, in a log or in --json: the backslash and every byte
// that is not kept become \xNN, so no escape sequence or bare CR reaches a
// terminal, a log line stays one line, and the bytes can be read back
// exactly. By default C0 controls but TAB, DEL, C1 controls, U+2028/U+2029
// and the bidi overrides (U+202A–U+202E, U+2066–U+2069) are escaped, other
// valid UTF-8 is kept. The result is cut after about max bytes, with "...".
std::string printable(std::string_view s, std::size_t max = kNoLimit, Keep keep = Keep::kUtf8);

}  // namespace tern::util
