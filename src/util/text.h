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

// Printable form of untrusted bytes for logs: control characters and bytes
// above 0x7e become \xNN, and the result is cut at max bytes.
std::string printable(std::string_view s, std::size_t max = 200);

}  // namespace tern::util
