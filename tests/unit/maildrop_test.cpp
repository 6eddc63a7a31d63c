// The maildrop file format (queue/maildrop.h): what sendmail writes reads
// back the same, and decode() refuses what another local user could have put
// there instead (bad magic, envelope lines, addresses, bare LF, NUL, sizes).
#include <gtest/gtest.h>

#include <vector>

#include "queue/maildrop.h"

namespace tern::maildrop {
namespace {

Submission sample() {
  Submission s;
  s.sender = "chris@contoso.com";
  s.full_name = "Chris Smith";
  s.recipients = {"kate@example.test", "bob@fabrikam.test"};
  s.message = "Subject: hi\r\n\r\nbody\r\n";
  return s;
}

TEST(Maildrop, RoundTrips) {
  auto back = decode(encode(sample()), 1000);
  EXPECT_EQ(back.sender, std::optional<std::string>("chris@contoso.com"));
  EXPECT_EQ(back.full_name, "Chris Smith");
  EXPECT_EQ(back.recipients, sample().recipients);
  EXPECT_EQ(back.message, sample().message);
}

TEST(Maildrop, DsnRequestsRoundTripAndAreChecked) {
  auto s = sample();
  s.notify = 2 | 8;  // SUCCESS,DELAY
  s.ret = "HDRS";
  s.envid = "env42";
  auto back = decode(encode(s), 1000);
  EXPECT_EQ(back.notify, 2 | 8);
  EXPECT_EQ(back.ret, "HDRS");
  EXPECT_EQ(back.envid, "env42");
  for (std::string line : std::vector<std::string>{"D 0", "D 16", "D 3", "D x", "T PART",
                                                   "E " + std::string(101, 'e')})
    EXPECT_THROW(decode("TERN-MAILDROP 1\n" + line + "\nR kate@example.test\n\nS: x\r\n\r\n", 1000),
                 BadDropFile)
        << line;
}

TEST(Maildrop, NullSenderAndNoSenderDiffer) {
  auto s = sample();
  s.sender = "";
  EXPECT_EQ(decode(encode(s), 1000).sender, std::optional<std::string>(""));
  s.sender.reset();
  EXPECT_FALSE(decode(encode(s), 1000).sender.has_value());
}

TEST(Maildrop, RefusesWhatSendmailNeverWrites) {
  auto bad = [](std::string data) { EXPECT_THROW(decode(data, 1000), BadDropFile) << data; };
  bad("");
  bad(
      std::string("\x7f"
                  "ELF garbage",
                  11));
  bad("TERN-MAILDROP 1\nR kate@example.test\n");                        // no end of envelope
  bad("TERN-MAILDROP 1\n\nSubject: x\r\n\r\nb\r\n");                    // no recipients
  bad("TERN-MAILDROP 1\nR kate@@example.test\n\nSubject: x\r\n\r\n");   // malformed address
  bad("TERN-MAILDROP 1\nR kate@example.test\nQ what\n\nS: x\r\n\r\n");  // unknown line
  bad("TERN-MAILDROP 1\nS a@b.test\nS c@d.test\nR kate@example.test\n\nS: x\r\n\r\n");
  bad("TERN-MAILDROP 1\nR kate@example.test\n\nSubject: x\nb\r\n\r\n");  // bare LF
  bad("TERN-MAILDROP 1\nR kate@example.test\n\nSubject: x\rb\r\n\r\n");  // bare CR
  static const char nul[] = "TERN-MAILDROP 1\nR kate@example.test\n\nS: \0\r\n\r\n";
  bad(std::string(nul, sizeof nul - 1));  // NUL
  bad("TERN-MAILDROP 1\nR kate@example.test\n\nSubject: x\r\n\r\nno line end");
  bad("TERN-MAILDROP 1\nR kate@example.test\n\nSubject: " + std::string(990, 'a') +
      "\r\n\r\n");  // line over 998
  bad("TERN-MAILDROP 1\nR kate@example.test\n\nSubject: x\r\n\r\n" + std::string(2000, 'a'));
  bad("TERN-MAILDROP 1\nN a\x01name\nR kate@example.test\n\nS: x\r\n\r\n");  // control in name
}

TEST(Maildrop, SizeBound) {
  auto s = sample();
  s.message = "Subject: x\r\n\r\n" + std::string(100, 'a') + "\r\n";
  EXPECT_NO_THROW(decode(encode(s), 200));
  EXPECT_THROW(decode(encode(s), 100), BadDropFile);
}

TEST(Maildrop, NamesAreFreshAndRecognised) {
  auto a = new_name(), b = new_name();
  EXPECT_NE(a, b);
  EXPECT_TRUE(valid_name(a));
  EXPECT_FALSE(valid_name(std::string(kTempPrefix) + a));
  EXPECT_FALSE(valid_name("bad"));
  EXPECT_FALSE(valid_name("../1700000000.0123456789abcdef0123456789abcdef"));
  EXPECT_FALSE(valid_name("1700000000.0123456789ABCDEF0123456789abcdef"));
  EXPECT_TRUE(valid_name("1700000000.0123456789abcdef0123456789abcdef"));
}

}  // namespace
}  // namespace tern::maildrop
