// smtp::DataDecoder: dot-unstuffing, line ends, the end-of-data marker and the
// SMTP smuggling variants (SPEC §3), each also split across every packet
// boundary.
#include <gtest/gtest.h>

#include "smtp/data_stream.h"

namespace tern::smtp {
namespace {

struct Decoded {
  std::string content;
  bool done = false;
  std::size_t consumed = 0;
  bool line_too_long = false;
  bool too_big = false;
};

Decoded decode(std::string_view input, std::size_t split = 0, std::size_t max_size = 1 << 20) {
  DataDecoder d(max_size);
  Decoded out;
  if (split == 0 || split >= input.size()) {
    out.consumed = d.feed(input, out.content);
  } else {
    out.consumed = d.feed(input.substr(0, split), out.content);
    if (!d.done()) out.consumed += d.feed(input.substr(split), out.content);
  }
  out.done = d.done();
  out.line_too_long = d.line_too_long();
  out.too_big = d.too_big();
  return out;
}

struct Case {
  const char* name;
  std::string input;
  bool done;
  std::string content;  // decoded, when done
};

const Case kCases[] = {
    {"simple", "Subject: x\r\n\r\nbody\r\n.\r\n", true, "Subject: x\r\n\r\nbody\r\n"},
    {"empty message", ".\r\n", true, ""},
    {"dot-stuffed line", "..leading dot\r\n.\r\n", true, ".leading dot\r\n"},
    {"lone dot stuffed", "a\r\n..\r\n.\r\n", true, "a\r\n.\r\n"},
    {"bare LF lines become CRLF", "a\nb\r\n.\r\n", true, "a\r\nb\r\n"},
    {"LF dot LF is content", "a\n.\nb\r\n.\r\n", true, "a\r\n\r\nb\r\n"},
    {"LF dot CRLF is content", "a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", true,
     "a\r\n\r\nMAIL FROM:<x@y>\r\n"},
    {"CRLF dot LF is content", "a\r\n.\nb\r\n.\r\n", true, "a\r\n\r\nb\r\n"},
    {"CR dot CR is content", "a\r.\rb\r\n.\r\n", true, "a\r.\rb\r\n"},
    {"CR dot CRLF does not end", "a\r.\r\nb\r\n.\r\n", true, "a\r.\r\nb\r\n"},
    {"dot space is content", "a\r\n. \r\n.\r\n", true, "a\r\n \r\n"},
    {"not finished", "a\r\nb\r\n", false, ""},
    {"not finished after LF dot LF", "a\r\n.\n", false, ""},
};

class DataStream : public ::testing::TestWithParam<Case> {};

TEST_P(DataStream, DecodesWholeAndSplitAtEveryOffset) {
  const Case& c = GetParam();
  for (std::size_t split = 0; split < c.input.size(); ++split) {
    auto d = decode(c.input, split);
    ASSERT_EQ(d.done, c.done) << c.name << " split at " << split;
    if (c.done) {
      EXPECT_EQ(d.content, c.content) << c.name << " split at " << split;
      EXPECT_EQ(d.consumed, c.input.size()) << c.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Smuggling, DataStream, ::testing::ValuesIn(kCases));

TEST(DataStreamLimits, PipelinedCommandsAfterTheEndAreLeft) {
  std::string input = "x\r\n.\r\nQUIT\r\n";
  auto d = decode(input);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(input.substr(d.consumed), "QUIT\r\n");
}

TEST(DataStreamLimits, LongLineIsFlaggedAndMemoryStaysBounded) {
  std::string input = std::string(5000, 'y') + "\r\n.\r\n";
  for (std::size_t split : {0u, 10u, 999u, 1001u, 1002u, 4999u, 5000u}) {
    auto d = decode(input, split);
    EXPECT_TRUE(d.done);
    EXPECT_TRUE(d.line_too_long);
    EXPECT_EQ(d.content, std::string(5000, 'y') + "\r\n") << split;
  }
}

TEST(DataStreamLimits, LineOf998OctetsIsFine) {
  auto d = decode(std::string(998, 'z') + "\r\n.\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_FALSE(d.line_too_long);
}

TEST(DataStreamLimits, TooBigStopsStoringButFindsTheEnd) {
  auto d = decode(std::string(100, 'a') + "\r\n" + std::string(100, 'b') + "\r\n.\r\n", 0, 150);
  EXPECT_TRUE(d.done);
  EXPECT_TRUE(d.too_big);
  EXPECT_LE(d.content.size(), 150u);
}

TEST(DataStreamLimits, ByteByByte) {
  std::string input = "a\r\n..b\nc\r\n.\r\n";
  DataDecoder dec(1 << 20);
  std::string out;
  std::size_t used = 0;
  for (char c : input) used += dec.feed(std::string_view(&c, 1), out);
  EXPECT_TRUE(dec.done());
  EXPECT_EQ(used, input.size());
  EXPECT_EQ(out, "a\r\n.b\r\nc\r\n");
}

}  // namespace
}  // namespace tern::smtp
