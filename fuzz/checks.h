// What the fuzz targets share: the "@@x" repeat in their inputs, and the
// invariants of what tern sends to a next hop. A finding prints what broke and
// aborts, so libFuzzer keeps the input. Command lines end in their one CR LF (no injected
// commands); DATA content has only CR LF line ends and ends exactly at its CR LF "." CR LF (RFC
// 5321 §2.3.8, §4.5.2; SPEC §4: a bare CR or LF never goes to a next hop).
#pragma once

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "delivery/smtp_client_wire.h"

namespace tern::fuzz {

// Thrown instead of aborting for a finding the environment asks to pass over;
// targets catch it at their entry point. Not a std::exception, so no catch in
// tern's own code takes it.
struct IgnoredFinding {};

// TERN_FUZZ_IGNORE=text|text... passes over findings whose message contains
// one of the texts (already reported and awaiting a fix), so that a run can
// look for others.
[[noreturn]] inline void finding(const char* format, ...) {
  char text[1024];
  std::va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  static const std::string ignore = [] {
    const char* v = std::getenv("TERN_FUZZ_IGNORE");
    return v ? std::string(v) : std::string();
  }();
  std::string_view rest = ignore;
  while (!rest.empty()) {
    std::string_view one = rest.substr(0, rest.find('|'));
    rest.remove_prefix(std::min(rest.size(), one.size() + 1));
    if (!one.empty() && std::string_view(text).find(one) != std::string_view::npos)
      throw IgnoredFinding{};
  }
  std::fprintf(stderr, "FINDING: %s\n", text);
  std::abort();
}

// bytes with each "@@x" N L P (P being L octets) replaced by P repeated N ×
// unit times, the whole at most limit octets: a short input can stand for a
// large message, a long line or an endless reply.
inline std::string expand(std::string_view bytes, std::size_t unit, std::size_t limit) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size();) {
    std::size_t len = i + 5 <= bytes.size() ? static_cast<std::uint8_t>(bytes[i + 4]) : 0;
    if (bytes.substr(i, 3) == "@@x" && len > 0 && i + 5 + len <= bytes.size()) {
      std::size_t n = static_cast<std::uint8_t>(bytes[i + 3]) * unit;
      auto pattern = bytes.substr(i + 5, len);
      for (std::size_t k = 0; k < n && out.size() + len <= limit; ++k) out += pattern;
      i += 5 + len;
    } else {
      out += bytes[i++];
    }
  }
  return out;
}

// Where text has a CR not followed by LF or an LF not after a CR; npos if nowhere.
inline std::size_t bare_line_end(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) return i;
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) return i;
  }
  return std::string_view::npos;
}

// One command line: CR LF at its end and nowhere else, no NUL.
inline void check_command_line(std::string_view what, std::string_view line) {
  if (line.size() < 2 || line.substr(line.size() - 2) != "\r\n")
    finding("%.*s does not end in CR LF", int(what.size()), what.data());
  auto body = line.substr(0, line.size() - 2);
  if (body.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
    finding("%.*s carries CR, LF or NUL inside the line: would inject a command", int(what.size()),
            what.data());
}

// The content as DotStuffer sends it, in pieces of at most max octets.
inline std::string stuffed(std::string_view content, std::size_t max) {
  delivery::DotStuffer stuffer(content);
  std::string all, piece;
  while (!stuffer.done()) {
    stuffer.next(piece, max);
    all += piece;
  }
  return all;
}

// Content after DATA: the same whatever the piece size; the end-of-data
// marker only at the end; no bare CR or LF that a receiver could read as a
// line end or a marker of its own (SMTP smuggling).
inline void check_data_transfer(std::string_view content, std::size_t piece) {
  std::string out = stuffed(content, piece == 0 ? 1 : piece);
  if (out != stuffed(content, 1 << 16)) finding("dot-stuffed content depends on the piece size");
  std::string wire = "\r\n" + out;  // the DATA command line ended just before
  if (wire.size() < 5 || wire.find("\r\n.\r\n") != wire.size() - 5)
    finding("dot-stuffed content does not end exactly at its CR LF . CR LF");
  auto bare = bare_line_end(out);
  if (bare != std::string_view::npos)
    finding("bare %s at offset %zu of the content sent after DATA (SPEC §4)",
            out[bare] == '\r' ? "CR" : "LF", bare);
}

}  // namespace tern::fuzz
