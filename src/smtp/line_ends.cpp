// Bare CR and bare LF to CR LF; see line_ends.h.
#include "smtp/line_ends.h"

#include <cstring>

namespace tern::smtp {

LineSpan next_line_span(std::string_view text) {
  // Two memchr scans beat a byte loop on large bodies, where line ends are rare.
  const void* lf = std::memchr(text.data(), '\n', text.size());
  std::size_t lf_at =
      lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - text.data()) : text.size();
  const void* cr = std::memchr(text.data(), '\r', lf_at);
  if (cr) {
    std::size_t at = static_cast<std::size_t>(static_cast<const char*>(cr) - text.data());
    return {at, lf && at + 1 == lf_at ? std::size_t{2} : std::size_t{1}};
  }
  if (lf) return {lf_at, 1};
  return {text.size(), 0};
}

void append_crlf_lines(std::string& out, std::string_view text) {
  out.reserve(out.size() + text.size());
  while (!text.empty()) {
    LineSpan line = next_line_span(text);
    out.append(text.substr(0, line.length));
    if (line.end == 0) break;
    out += "\r\n";
    text.remove_prefix(line.length + line.end);
  }
}

std::string crlf_lines(std::string_view text) {
  std::string out;
  append_crlf_lines(out, text);
  return out;
}

}  // namespace tern::smtp
