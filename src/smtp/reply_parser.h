// Reads SMTP replies from a server's byte stream (RFC 5321 §4.2): lines
// "code-text" until "code text", the enhanced status code (RFC 3463) split off
// when the text starts with one whose class matches the code. Bounded: a reply
// with too many lines or too long a line, a line that does not start with
// three digits, or lines whose codes differ are errors, not crashes or hangs.
// No I/O; shared by outbound delivery, `tern check` and `tern talk`.
#pragma once

#include <cstddef>
#include <string>

#include "smtp/input_buffer.h"
#include "smtp/reply.h"

namespace tern::smtp {

class ReplyParser {
 public:
  enum class Status { kNeedMore, kReply, kError };

  explicit ReplyParser(std::size_t max_lines = 100, std::size_t max_line = 4096)
      : max_lines_(max_lines), max_line_(max_line) {}

  // Takes lines from in until a whole reply is there (kReply, in reply), more
  // bytes are needed (kNeedMore; partial lines stay in in), or the input is not
  // SMTP (kError, with error describing what was wrong).
  Status parse(InputBuffer& in, Reply& reply, std::string& error);

 private:
  std::size_t max_lines_;
  std::size_t max_line_;
  Reply partial_;
};

// "2.1.5" at the start of text whose first digit is code's class, or "".
std::string enhanced_code_prefix(int code, std::string_view text);

}  // namespace tern::smtp
