// smtp::crlf_lines: every bare CR and bare LF becomes CR LF (RFC 5321
// §2.3.8); CR LF stays as it is; nothing else changes.
#include <gtest/gtest.h>

#include "smtp/line_ends.h"
#include "util/text.h"

namespace tern::smtp {
namespace {

TEST(LineEnds, Table) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"", ""},
      {"a", "a"},
      {"a\r\nb\r\n", "a\r\nb\r\n"},
      {"a\nb\n", "a\r\nb\r\n"},
      {"a\rb\r", "a\r\nb\r\n"},
      {"A\r.\r", "A\r\n.\r\n"},
      {"a\r\r\n", "a\r\n\r\n"},
      {"a\n\r", "a\r\n\r\n"},
      {"\n\n", "\r\n\r\n"},
      {"\r", "\r\n"},
      {std::string("nul\0\r", 5), std::string("nul\0\r\n", 6)},
  };
  for (const auto& c : cases) EXPECT_EQ(crlf_lines(c.in), c.out) << util::printable(c.in);
}

TEST(LineEnds, Spans) {
  EXPECT_EQ(next_line_span("ab\r\ncd").length, 2u);
  EXPECT_EQ(next_line_span("ab\r\ncd").end, 2u);
  EXPECT_EQ(next_line_span("ab\rcd\n").end, 1u);
  EXPECT_EQ(next_line_span("ab\ncd\r").length, 2u);
  EXPECT_EQ(next_line_span("abc").end, 0u);
  EXPECT_EQ(next_line_span("abc").length, 3u);
}

}  // namespace
}  // namespace tern::smtp
