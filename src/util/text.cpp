#include "util/text.h"

#include <algorithm>
#include <charconv>
#include <limits>

namespace tern::util {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = ascii_lower(c);
  return out;
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = ascii_upper(c);
  return out;
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return trim_right(s);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return value;
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

namespace {
// Splits "15m" into (15, "m"); the number part must be present.
std::optional<std::pair<std::uint64_t, std::string_view>> number_and_unit(std::string_view s) {
  s = trim(s);
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  auto number = parse_uint(s.substr(0, i));
  if (!number) return std::nullopt;
  return std::make_pair(*number, trim(s.substr(i)));
}

std::optional<std::uint64_t> scaled(std::uint64_t n, std::uint64_t factor) {
  if (factor != 0 && n > std::numeric_limits<std::uint64_t>::max() / factor) return std::nullopt;
  return n * factor;
}
}  // namespace

std::optional<std::uint64_t> parse_duration_ms(std::string_view s) {
  auto parts = number_and_unit(s);
  if (!parts) return std::nullopt;
  auto [n, unit] = *parts;
  if (unit == "ms") return n;
  if (unit.empty() || unit == "s") return scaled(n, 1000);
  if (unit == "m") return scaled(n, 60'000);
  if (unit == "h") return scaled(n, 3'600'000);
  if (unit == "d") return scaled(n, 86'400'000);
  return std::nullopt;
}

std::optional<std::uint64_t> parse_size(std::string_view s) {
  auto parts = number_and_unit(s);
  if (!parts) return std::nullopt;
  auto [n, unit] = *parts;
  if (unit.empty() || iequals(unit, "b")) return n;
  if (iequals(unit, "k") || iequals(unit, "kb")) return scaled(n, 1024);
  if (iequals(unit, "m") || iequals(unit, "mb")) return scaled(n, 1024 * 1024);
  if (iequals(unit, "g") || iequals(unit, "gb")) return scaled(n, 1024ull * 1024 * 1024);
  return std::nullopt;
}

std::size_t utf8_sequence_length(std::string_view s) {
  if (s.empty()) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  // RFC 3629 §4: the lead byte fixes the length and the range of the second byte.
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < len) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (std::size_t i = 2; i < len; ++i)
    if (p[i] < 0x80 || p[i] > 0xbf) return 0;
  return len;
}

bool is_valid_utf8(std::string_view s) {
  while (!s.empty()) {
    std::size_t len = utf8_sequence_length(s);
    if (len == 0) return false;
    s.remove_prefix(len);
  }
  return true;
}

namespace {

// The code point of a well-formed sequence of len bytes.
char32_t decode_utf8(std::string_view s, std::size_t len) {
  auto b = [&](std::size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(s[i])); };
  if (len == 1) return b(0);
  if (len == 2) return ((b(0) & 0x1f) << 6) | (b(1) & 0x3f);
  if (len == 3) return ((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f);
  return ((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) | (b(3) & 0x3f);
}

// Characters a terminal acts on instead of showing, or that break or reorder
// a line: C0 controls but TAB (white space that folds header lines, RFC 5322
// §2.2.3), DEL and C1 controls, LINE/PARAGRAPH SEPARATOR, and the bidi
// embeddings, overrides and isolates ("Trojan Source", CVE-2021-42574).
bool acts_on_terminal(char32_t c) {
  return (c < 0x20 && c != '\t') || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029 ||
         (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

bool kept(char32_t c, std::size_t len, Keep keep) {
  if (c == '\\') return false;
  switch (keep) {
    case Keep::kJson:
      return true;
    case Keep::kAscii:
      return len == 1 && !acts_on_terminal(c);
    case Keep::kUtf8:
      return !acts_on_terminal(c);
  }
  return false;
}

}  // namespace

std::string printable(std::string_view s, std::size_t max, Keep keep) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(s.size(), max) + 8);
  while (!s.empty()) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    std::size_t len = utf8_sequence_length(s);
    if (len != 0 && kept(decode_utf8(s, len), len, keep)) {
      out.append(s.substr(0, len));
      s.remove_prefix(len);
      continue;
    }
    // Not kept: each byte of the character (or the one invalid byte) as \xNN.
    for (std::size_t i = 0; i < std::max<std::size_t>(len, 1); ++i) {
      auto c = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    s.remove_prefix(std::max<std::size_t>(len, 1));
  }
  return out;
}

}  // namespace tern::util
