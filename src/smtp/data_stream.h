// The DATA stream decoder (RFC 5321 §4.1.1.4, §4.5.2): removes dot-stuffing,
// writes every line with CR LF, and finds the end of the message.
//
// Smuggling-safe (SPEC §3, like Postfix's smtpd_forbid_bare_newline=normalize):
// the message ends only at the exact octets CR LF "." CR LF. A bare LF ends a
// line of content (and is stored as CR LF) but never takes part in an end-of-data
// marker, so "\n.\n", "\n.\r\n", "\r\n.\n" and "\r.\r" are all content. What
// tern stores therefore never holds a line ending another server could read as
// the end of the message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tern::smtp {

class DataDecoder {
 public:
  // max_size: decoded octets kept before the message counts as too big (the rest
  // is read and dropped). max_line: longest text line, CR LF included (§4.5.3.1.6).
  DataDecoder(std::size_t max_size, std::size_t max_line = 1000)
      : max_size_(max_size), max_line_(max_line) {}

  // Consumes octets from input, appends decoded content to out; returns how many
  // octets were used. After done(), the rest of the input (pipelined commands)
  // is left unconsumed.
  std::size_t feed(std::string_view input, std::string& out);

  bool done() const { return done_; }
  bool too_big() const { return too_big_; }
  bool line_too_long() const { return line_too_long_; }
  std::size_t size() const { return size_; }  // decoded octets, counted even past max_size

 private:
  void emit_line(std::string_view content, bool crlf, std::string& out);
  void emit(std::string_view bytes, std::string& out);

  std::size_t max_size_;
  std::size_t max_line_;
  std::size_t size_ = 0;
  std::string carry_;      // the start of a line whose LF has not arrived yet
  bool prev_crlf_ = true;  // the previous line ended with CR LF (the DATA line counts)
  bool mid_line_ = false;  // part of the current line has already been emitted
  bool done_ = false;
  bool too_big_ = false;
  bool line_too_long_ = false;
};

}  // namespace tern::smtp
