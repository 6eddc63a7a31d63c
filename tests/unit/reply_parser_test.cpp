// smtp::ReplyParser: tables of server bytes → reply or error (RFC 5321 §4.2,
// enhanced codes of RFC 3463), input split at every byte, several replies in
// one buffer, and the bounds (line count, line length) that keep a hostile
// server from making the client hang or grow without limit.
#include <gtest/gtest.h>

#include "smtp/reply_parser.h"

namespace tern::smtp {
namespace {

struct Parsed {
  ReplyParser::Status status = ReplyParser::Status::kNeedMore;
  Reply reply;
  std::string error;
};

Parsed parse_all(std::string_view bytes, std::size_t max_lines = 100, std::size_t max_line = 512) {
  ReplyParser parser(max_lines, max_line);
  InputBuffer in;
  char* p = in.prepare(bytes.size());
  std::copy(bytes.begin(), bytes.end(), p);
  in.commit(bytes.size());
  Parsed out;
  out.status = parser.parse(in, out.reply, out.error);
  return out;
}

struct ReplyCase {
  const char* name;
  const char* input;
  int code;
  const char* enhanced;
  std::vector<std::string> lines;
};

class ReplyParserReplies : public ::testing::TestWithParam<ReplyCase> {};

TEST_P(ReplyParserReplies, Parses) {
  const auto& c = GetParam();
  auto r = parse_all(c.input);
  ASSERT_EQ(r.status, ReplyParser::Status::kReply) << r.error;
  EXPECT_EQ(r.reply.code, c.code);
  EXPECT_EQ(r.reply.enhanced, c.enhanced);
  EXPECT_EQ(r.reply.lines, c.lines);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ReplyParserReplies,
    ::testing::Values(
        ReplyCase{"plain", "220 mx.example.test ESMTP\r\n", 220, "", {"mx.example.test ESMTP"}},
        ReplyCase{"enhanced", "250 2.1.0 Sender OK\r\n", 250, "2.1.0", {"Sender OK"}},
        ReplyCase{"code_only", "250\r\n", 250, "", {""}},
        ReplyCase{"code_space", "250 \r\n", 250, "", {""}},
        ReplyCase{"enhanced_only", "250 2.0.0\r\n", 250, "2.0.0", {""}},
        ReplyCase{"bare_lf", "250-a\n250 b\n", 250, "", {"a", "b"}},
        ReplyCase{
            "ehlo",
            "250-mx.example.test Hello\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 PIPELINING\r\n",
            250,
            "",
            {"mx.example.test Hello", "SIZE 1000", "8BITMIME", "PIPELINING"}},
        ReplyCase{"enhanced_every_line",
                  "550-5.7.1 Rejected\r\n550-5.7.1 see https://x.test\r\n550 5.7.1 bye\r\n",
                  550,
                  "5.7.1",
                  {"Rejected", "see https://x.test", "bye"}},
        ReplyCase{"enhanced_first_line_only",
                  "550-5.1.1 No such user\r\n550 more text\r\n",
                  550,
                  "5.1.1",
                  {"No such user", "more text"}},
        ReplyCase{"other_code_on_later_line_kept",
                  "550-5.1.1 a\r\n550 5.7.1 b\r\n",
                  550,
                  "5.1.1",
                  {"a", "5.7.1 b"}},
        ReplyCase{"class_mismatch", "550 2.1.0 odd\r\n", 550, "", {"2.1.0 odd"}},
        ReplyCase{"no_enhanced_on_354", "354 3.0.0 go\r\n", 354, "", {"3.0.0 go"}},
        ReplyCase{"three_digit_parts", "452 4.123.456 x\r\n", 452, "4.123.456", {"x"}},
        ReplyCase{"four_digit_detail", "452 4.1.1234 x\r\n", 452, "", {"4.1.1234 x"}},
        ReplyCase{"not_followed_by_space", "250 2.1.0x\r\n", 250, "", {"2.1.0x"}},
        ReplyCase{"version_like", "220 2.0 server\r\n", 220, "", {"2.0 server"}},
        ReplyCase{"utf8_text",
                  "550 5.1.1 Benutzer unbekannt \xc3\xa4\r\n",
                  550,
                  "5.1.1",
                  {"Benutzer unbekannt \xc3\xa4"}}),
    [](const auto& info) { return std::string(info.param.name); });

struct ErrorCase {
  const char* name;
  const char* input;
  const char* error_contains;
};

class ReplyParserErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ReplyParserErrors, Refuses) {
  const auto& c = GetParam();
  auto r = parse_all(c.input);
  ASSERT_EQ(r.status, ReplyParser::Status::kError);
  EXPECT_NE(r.error.find(c.error_contains), std::string::npos) << r.error;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ReplyParserErrors,
    ::testing::Values(ErrorCase{"http", "HTTP/1.1 400 Bad Request\r\n", "not a reply line"},
                      ErrorCase{"two_digits", "25\r\n", "not a reply line"},
                      ErrorCase{"four_digits", "2500 x\r\n", "not a reply line"},
                      ErrorCase{"bad_separator", "250_x\r\n", "not a reply line"},
                      ErrorCase{"class_1", "100 continue\r\n", "not a reply line"},
                      ErrorCase{"class_6", "600 x\r\n", "not a reply line"},
                      ErrorCase{"empty_line", "\r\n", "not a reply line"},
                      ErrorCase{"mixed_codes", "250-a\r\n550 b\r\n",
                                "different codes (250 then 550)"},
                      ErrorCase{"garbage_continuation", "250-a\r\nhello\r\n", "not a reply line"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ReplyParser, SixHundredLineReplyIsAnError) {
  std::string ehlo;
  for (int i = 0; i < 599; ++i) ehlo += "250-X" + std::to_string(i) + "\r\n";
  ehlo += "250 LAST\r\n";
  auto r = parse_all(ehlo);
  ASSERT_EQ(r.status, ReplyParser::Status::kError);
  EXPECT_NE(r.error.find("longer than 100 lines"), std::string::npos) << r.error;
  EXPECT_EQ(parse_all(ehlo, 600).status, ReplyParser::Status::kReply);
}

TEST(ReplyParser, LongLineIsAnErrorWithOrWithoutItsEnd) {
  std::string line = "250 " + std::string(600, 'x');
  EXPECT_EQ(parse_all(line + "\r\n").status, ReplyParser::Status::kError);
  EXPECT_EQ(parse_all(line).status, ReplyParser::Status::kError);  // no LF yet: already too long
  EXPECT_EQ(parse_all("250 " + std::string(508, 'x')).status, ReplyParser::Status::kNeedMore);
  EXPECT_EQ(parse_all("250 " + std::string(508, 'x') + "\r\n").status, ReplyParser::Status::kReply);
}

// A hostile next hop streaming without end, read the way ClientConnection
// reads (4 KB at a time, the parser between reads): the parser gives up
// while the bytes held stay under one line limit plus one read.
std::size_t most_held_until_error(const std::string& unit, std::size_t max_line) {
  constexpr std::size_t kRead = 4096;
  ReplyParser parser(100, max_line);
  InputBuffer in;
  Reply reply;
  std::string error;
  std::size_t most = 0, sent = 0;
  for (;;) {
    char* p = in.prepare(kRead);
    for (std::size_t i = 0; i < kRead; ++i, ++sent) p[i] = unit[sent % unit.size()];
    in.commit(kRead);
    most = std::max(most, in.data().size());
    auto status = parser.parse(in, reply, error);
    if (status == ReplyParser::Status::kError) return most;
    EXPECT_EQ(status, ReplyParser::Status::kNeedMore);
    if (sent > 10 * 1024 * 1024) {
      ADD_FAILURE() << "no error after 10 MB of " << unit.substr(0, 20);
      return most;
    }
  }
}

TEST(ReplyParser, EndlessInputIsBounded) {
  std::size_t max_line = 4096;
  EXPECT_LE(most_held_until_error("x", max_line), max_line + 1 + 4096);  // a 100 KB+ line
  EXPECT_LE(most_held_until_error("451 " + std::string(100'000, 'x') + "\r\n", max_line),
            max_line + 1 + 4096);
  EXPECT_LE(most_held_until_error("250-MORE\r\n", max_line), 2 * 4096u);  // continuation forever
  EXPECT_LE(most_held_until_error("250-" + std::string(4000, 'y') + "\r\n", max_line),
            max_line + 1 + 4096);
}

TEST(ReplyParser, InputSplitAtEveryByte) {
  const std::string wire = "250-2.0.0 mx Hello\r\n250-2.0.0 SIZE 10\r\n250 2.0.0 OK\r\n";
  ReplyParser parser;
  InputBuffer in;
  Reply reply;
  std::string error;
  for (std::size_t i = 0; i < wire.size(); ++i) {
    *in.prepare(1) = wire[i];
    in.commit(1);
    auto status = parser.parse(in, reply, error);
    if (i + 1 < wire.size()) {
      ASSERT_EQ(status, ReplyParser::Status::kNeedMore) << "at byte " << i;
    } else {
      ASSERT_EQ(status, ReplyParser::Status::kReply);
    }
  }
  EXPECT_EQ(reply, Reply(250, "2.0.0", std::vector<std::string>{"mx Hello", "SIZE 10", "OK"}));
  EXPECT_TRUE(in.empty());
}

TEST(ReplyParser, PipelinedRepliesOneAtATime) {
  ReplyParser parser;
  InputBuffer in;
  std::string wire = "250 2.1.0 ok\r\n550 5.1.1 unknown\r\n354 go";
  std::copy(wire.begin(), wire.end(), in.prepare(wire.size()));
  in.commit(wire.size());
  Reply reply;
  std::string error;
  ASSERT_EQ(parser.parse(in, reply, error), ReplyParser::Status::kReply);
  EXPECT_EQ(reply.code, 250);
  ASSERT_EQ(parser.parse(in, reply, error), ReplyParser::Status::kReply);
  EXPECT_EQ(reply.summary(), "550 5.1.1 unknown");
  EXPECT_EQ(parser.parse(in, reply, error), ReplyParser::Status::kNeedMore);
  EXPECT_EQ(in.data(), "354 go");  // the partial line stays for the next read
}

TEST(ReplyParser, RoundTripsThroughWire) {
  Reply r(550, "5.7.1", std::vector<std::string>{"Rejected", "See policy"});
  auto parsed = parse_all(r.wire());
  ASSERT_EQ(parsed.status, ReplyParser::Status::kReply);
  EXPECT_EQ(parsed.reply, r);
}

TEST(ReplyParser, EnhancedCodePrefix) {
  EXPECT_EQ(enhanced_code_prefix(250, "2.1.5 ok"), "2.1.5");
  EXPECT_EQ(enhanced_code_prefix(451, "4.4.2"), "4.4.2");
  EXPECT_EQ(enhanced_code_prefix(451, "5.4.2 x"), "");
  EXPECT_EQ(enhanced_code_prefix(354, "3.0.0 x"), "");
  EXPECT_EQ(enhanced_code_prefix(250, "2..1 x"), "");
  EXPECT_EQ(enhanced_code_prefix(250, "2.1. x"), "");
  EXPECT_EQ(enhanced_code_prefix(250, "2.1"), "");
  EXPECT_EQ(enhanced_code_prefix(250, ""), "");
}

}  // namespace
}  // namespace tern::smtp
