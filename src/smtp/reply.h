// An SMTP reply: a three-digit code, an optional enhanced status code (RFC 3463)
// and one or more lines of text. Session handlers return Reply values; only the
// connection code turns them into bytes (RFC 5321 §4.2: "code SP text" on the
// last line, "code - text" on the lines before it).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tern::smtp {

struct Reply {
  int code = 0;
  std::string enhanced;            // "2.1.0"; empty for replies without one (EHLO, 220, 354)
  std::vector<std::string> lines;  // at least one line

  Reply() = default;
  Reply(int c, std::string_view e, std::string_view text) : code(c), enhanced(e) {
    lines.emplace_back(text);
  }
  Reply(int c, std::string_view e, std::vector<std::string> ls)
      : code(c), enhanced(e), lines(std::move(ls)) {}

  bool positive() const { return code >= 200 && code < 400; }
  bool transient_failure() const { return code >= 400 && code < 500; }
  bool permanent_failure() const { return code >= 500; }
  int reply_class() const { return code / 100; }

  // The reply as it goes on the wire, CRLF-terminated lines.
  std::string wire() const;
  void append_wire(std::string& out) const;
  // The first line without code, for logs and messages ("2.1.0 Sender OK").
  std::string summary() const;

  bool operator==(const Reply&) const = default;
};

}  // namespace tern::smtp
