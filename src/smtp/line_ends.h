// Line ends on the way out (RFC 5321 §2.3.8: CR and LF appear only together,
// as CR LF): a bare CR or a bare LF becomes CR LF, so no receiver reads a line
// end — or an end of data such as "<CR>.<CR>" — that tern did not send as one
// (SMTP smuggling). Used for everything tern writes from stored content: the
// DATA stream to a next hop and the message returned in a DSN.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tern::smtp {

// The length of the line at the start of text (up to its first CR or LF) and
// of its line end: 2 for CR LF, 1 for a bare CR or LF, 0 when text has none.
struct LineSpan {
  std::size_t length = 0;
  std::size_t end = 0;
};
LineSpan next_line_span(std::string_view text);

// text with every line end written as CR LF.
void append_crlf_lines(std::string& out, std::string_view text);
std::string crlf_lines(std::string_view text);

}  // namespace tern::smtp
