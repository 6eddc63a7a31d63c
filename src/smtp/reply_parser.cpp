// smtp::ReplyParser: whole replies from a server's byte stream (RFC 5321
// §4.2), with the enhanced status code (RFC 3463, RFC 2034 §4) split off.
//
// Enhanced codes: the code is taken from the first line of the reply (its
// class must equal the reply's first digit) and removed from every line that
// starts with the same code. RFC 2034 §4 requires it on every line, but some
// servers put it on the first line only; taking it from there keeps the code
// for DSNs either way. A line that carries a different code keeps it as text.
#include "smtp/reply_parser.h"

#include <cstring>

#include "util/text.h"

namespace tern::smtp {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Digits at text[pos...], between 1 and 3 of them; returns how many, 0 if not.
std::size_t digit_run(std::string_view text, std::size_t pos) {
  std::size_t n = 0;
  while (pos + n < text.size() && is_digit(text[pos + n])) ++n;
  return (n >= 1 && n <= 3) ? n : 0;
}

// The line's text without the enhanced code and the space after it, when it
// starts with exactly that code.
std::string_view without_enhanced(std::string_view line, std::string_view enhanced) {
  if (line.substr(0, enhanced.size()) != enhanced) return line;
  if (line.size() == enhanced.size()) return {};
  if (line[enhanced.size()] != ' ') return line;
  return line.substr(enhanced.size() + 1);
}

}  // namespace

std::string enhanced_code_prefix(int code, std::string_view text) {
  int reply_class = code / 100;
  if (reply_class != 2 && reply_class != 4 && reply_class != 5) return {};  // RFC 3463 §3.1
  if (text.size() < 5 || text[0] != char('0' + reply_class) || text[1] != '.') return {};
  std::size_t subject = digit_run(text, 2);
  if (subject == 0 || 2 + subject >= text.size() || text[2 + subject] != '.') return {};
  std::size_t detail_at = 3 + subject;
  std::size_t detail = digit_run(text, detail_at);
  if (detail == 0) return {};
  std::size_t end = detail_at + detail;
  if (end < text.size() && text[end] != ' ') return {};
  return std::string(text.substr(0, end));
}

ReplyParser::Status ReplyParser::parse(InputBuffer& in, Reply& reply, std::string& error) {
  auto fail = [&](std::string what) {
    partial_ = Reply();
    error = std::move(what);
    return Status::kError;
  };
  for (;;) {
    std::string_view pending = in.data();
    if (!std::memchr(pending.data(), '\n', pending.size())) {
      // A line without its end that is already too long (+1: its CR).
      if (pending.size() > max_line_ + 1)
        return fail("reply line longer than " + std::to_string(max_line_) + " octets");
      return Status::kNeedMore;
    }
    auto next = in.next_line(max_line_);
    if (next.status == InputBuffer::LineStatus::kNeedMore) return Status::kNeedMore;
    if (next.status == InputBuffer::LineStatus::kTooLong)
      return fail("reply line longer than " + std::to_string(max_line_) + " octets");
    std::string_view line = next.line;
    // RFC 5321 §4.2: Reply-code [ SP / "-" text ]; the first digit is 2 to 5.
    bool code_ok = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && is_digit(line[1]) &&
                   is_digit(line[2]) && (line.size() == 3 || line[3] == ' ' || line[3] == '-');
    if (!code_ok) return fail("not a reply line: \"" + util::printable(line, 80) + "\"");
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!partial_.lines.empty() && code != partial_.code)
      return fail("reply lines with different codes (" + std::to_string(partial_.code) + " then " +
                  std::to_string(code) + ")");
    if (partial_.lines.size() >= max_lines_)
      return fail("reply longer than " + std::to_string(max_lines_) + " lines");
    partial_.code = code;
    partial_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    if (line.size() > 3 && line[3] == '-') continue;

    partial_.enhanced = enhanced_code_prefix(code, partial_.lines.front());
    if (!partial_.enhanced.empty()) {
      for (auto& l : partial_.lines) l = std::string(without_enhanced(l, partial_.enhanced));
    }
    reply = std::move(partial_);
    partial_ = Reply();
    return Status::kReply;
  }
}

}  // namespace tern::smtp
