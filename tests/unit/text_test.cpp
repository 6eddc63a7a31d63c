// util::printable (src/util/text.h), the one way tern shows outside bytes to a
// person: no escape sequence, bare CR or invalid UTF-8 survives it, valid
// UTF-8 does, and the original bytes can always be read back from the result.
#include <gtest/gtest.h>

#include <random>
#include <string_view>

#include "util/text.h"

namespace tern::util {

using namespace std::string_view_literals;
namespace {

// The inverse of printable (without a cut): \xNN back to the byte.
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      EXPECT_LE(i + 4, s.size());
      EXPECT_EQ(s[i + 1], 'x');
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 2, 2)), nullptr, 16));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool has_control(std::string_view s) {
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  return false;
}

TEST(Printable, EscapeSequencesAndBareLineEndsAreEscaped) {
  EXPECT_EQ(printable("\x1b[2Jcleared"), "\\x1b[2Jcleared");
  EXPECT_EQ(printable("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
  EXPECT_EQ(printable("a\rb\nc\0e\x01\x1f"sv), "a\\x0db\\x0ac\\x00e\\x01\\x1f");
  EXPECT_EQ(printable("folded\r\n\tline"), "folded\\x0d\\x0a\tline");  // TAB is white space
  EXPECT_EQ(printable("del\x7f"), "del\\x7f");
}

TEST(Printable, ValidUtf8IsKept) {
  EXPECT_EQ(printable("chrís@contoso.com"), "chrís@contoso.com");
  EXPECT_EQ(printable("日本語 — ok 🙂"), "日本語 — ok 🙂");
  EXPECT_EQ(printable("plain ASCII <id@x>"), "plain ASCII <id@x>");
}

TEST(Printable, C1ControlsLineSeparatorsAndBidiOverridesAreEscaped) {
  EXPECT_EQ(printable("\xc2\x9b"
                      "2J"),
            "\\xc2\\x9b2J");  // U+009B CSI
  EXPECT_EQ(printable("a\xe2\x80\xae"
                      "b"),
            "a\\xe2\\x80\\xaeb");                           // U+202E RLO
  EXPECT_EQ(printable("\xe2\x81\xa6"), "\\xe2\\x81\\xa6");  // U+2066 LRI
  EXPECT_EQ(printable("\xe2\x80\xa8"), "\\xe2\\x80\\xa8");  // U+2028 LINE SEPARATOR
  EXPECT_EQ(printable("\xc2\xa0"), "\xc2\xa0");             // U+00A0 is kept
}

TEST(Printable, InvalidUtf8IsEscapedByteByByte) {
  EXPECT_EQ(printable("<\xff@x>"), "<\\xff@x>");
  EXPECT_EQ(printable("\xe2\x82"), "\\xe2\\x82");                    // truncated
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");                    // overlong "/"
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(printable("\xe2\x82"
                      "\xe2\x82\xac"),
            "\\xe2\\x82€");  // resynchronises
}

TEST(Printable, BackslashIsEscapedSoTheResultReadsBack) {
  EXPECT_EQ(printable("a\\xffb"), "a\\x5cxffb");
  EXPECT_NE(printable("\\xff"), printable("\xff"));
}

TEST(Printable, AsciiKeepsOnlyPrintableAscii) {
  EXPECT_EQ(printable("olá\x1b", kNoLimit, Keep::kAscii), "ol\\xc3\\xa1\\x1b");
}

TEST(Printable, JsonKeepsControlsButNotInvalidBytesOrBackslash) {
  EXPECT_EQ(printable("a\r\n\x1b\tb", kNoLimit, Keep::kJson), "a\r\n\x1b\tb");
  EXPECT_EQ(printable("olá\xff\\", kNoLimit, Keep::kJson), "olá\\xff\\x5c");
  EXPECT_TRUE(is_valid_utf8(printable("\xff\xfe\xc0", kNoLimit, Keep::kJson)));
}

TEST(Printable, CutAfterMaxWithoutSplittingACharacter) {
  EXPECT_EQ(printable("abcdef", 3), "abc...");
  EXPECT_EQ(printable("abc", 3), "abc");
  EXPECT_EQ(printable("ééé", 3), "éé...");
  EXPECT_EQ(printable("\x1b\x1b\x1b", 4), "\\x1b...");
  EXPECT_EQ(printable("\x1b\x1b\x1b", 5), "\\x1b\\x1b...");
}

TEST(Printable, AnyBytesReadBackExactlyInEveryMode) {
  std::mt19937 rng(8);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes(rng() % 40, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng() % 256);
    for (Keep keep : {Keep::kUtf8, Keep::kAscii, Keep::kJson}) {
      std::string shown = printable(bytes, kNoLimit, keep);
      ASSERT_TRUE(is_valid_utf8(shown)) << printable(bytes);
      ASSERT_EQ(unescape(shown), bytes) << printable(bytes);
      if (keep != Keep::kJson) {
        ASSERT_FALSE(has_control(shown)) << shown;
      }
    }
  }
}

TEST(Utf8, SequenceLength) {
  EXPECT_EQ(utf8_sequence_length(""), 0u);
  EXPECT_EQ(utf8_sequence_length("a"), 1u);
  EXPECT_EQ(utf8_sequence_length("é!"), 2u);
  EXPECT_EQ(utf8_sequence_length("€"), 3u);
  EXPECT_EQ(utf8_sequence_length("🙂"), 4u);
  EXPECT_EQ(utf8_sequence_length("\x80"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xe2\x82"), 0u);
  EXPECT_TRUE(is_valid_utf8("olá €"));
  EXPECT_FALSE(is_valid_utf8("ol\xe1"));
}

}  // namespace
}  // namespace tern::util
