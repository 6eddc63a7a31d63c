// Large messages stream into the spool in parts while they arrive (SPEC §4
// Robustness: memory per connection is bounded), BDAT sizes are checked without
// wrapping, and what the 250 reply echoes of a hostile Message-ID is bounded.
#include <gtest/gtest.h>

#include "session_harness.h"

namespace tern::test {
namespace {

constexpr const char* kHello = "EHLO client.example";
constexpr const char* kMail = "MAIL FROM:<chris@contoso.com>";
constexpr const char* kRcpt = "RCPT TO:<kate@example.test>";

// EHLO, MAIL and RCPT accepted: the session waits for DATA or BDAT.
void open_transaction(SessionHarness& h) {
  h.say(kHello);
  h.say(kMail);
  h.say(kRcpt);
}

std::string big_body(std::size_t lines) {
  std::string body = "Subject: big\r\nMessage-ID: <big@contoso.com>\r\n\r\n";
  for (std::size_t i = 0; i < lines; ++i) body += std::string(70, 'a' + i % 26) + "\r\n";
  return body;
}

TEST(SessionStream, DataStreamsIntoPartsAndStoresEveryByte) {
  SessionHarness h;
  open_transaction(h);
  h.say("DATA");
  std::string body = big_body(20000);  // about 1.4 MB: several parts
  std::string reply;
  for (std::size_t at = 0; at < body.size(); at += 65536) reply += h.feed(body.substr(at, 65536));
  reply += h.feed(".\r\n");
  EXPECT_EQ(reply.rfind("250 2.6.0 <big@contoso.com> [InternalId=", 0), 0u) << reply;
  auto env = h.spool().list().front();
  std::string stored = *h.spool().content(env.id);
  std::size_t received_end = stored.find("Subject: big");
  ASSERT_NE(received_end, std::string::npos);
  EXPECT_EQ(stored.substr(received_end), body);
  EXPECT_EQ(env.size, stored.size());
  EXPECT_EQ(env.message_id, "<big@contoso.com>");
  EXPECT_EQ(h.spool().stored_parts(), 0u);  // taken into the message
}

TEST(SessionStream, AbandonedMessageHandsItsPartsBack) {
  SessionHarness h;
  open_transaction(h);
  h.say("DATA");
  std::string body = big_body(10000);
  for (std::size_t at = 0; at < body.size(); at += 65536) h.feed(body.substr(at, 65536));
  EXPECT_GT(h.spool().stored_parts(), 0u);
  EXPECT_EQ(h.abandoned(), 0);
  // A message over the size limit is refused: what was stored is abandoned.
  SessionHarness small("max_message_size = 300000\n");
  open_transaction(small);
  small.say("DATA");
  std::string reply;
  for (std::size_t at = 0; at < body.size(); at += 65536)
    reply += small.feed(body.substr(at, 65536));
  reply += small.feed(".\r\n");
  EXPECT_EQ(reply, "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_EQ(small.abandoned(), 1);
  EXPECT_TRUE(small.spool().list().empty());
}

TEST(SessionStream, FullDiskWhileStreamingAnswers452AfterTheData) {
  SessionHarness h;
  open_transaction(h);
  h.say("DATA");
  std::string body = big_body(10000);
  h.spool().room = false;  // the spool refuses the parts
  std::string reply;
  for (std::size_t at = 0; at < body.size(); at += 65536) reply += h.feed(body.substr(at, 65536));
  EXPECT_EQ(reply, "");  // nothing until the end of the data
  reply = h.feed(".\r\n");
  EXPECT_EQ(reply, "452 4.3.1 Insufficient system storage\r\n");
  h.spool().room = true;
  EXPECT_EQ(h.say("RSET"), "250 2.0.0 Resetting\r\n");  // the session goes on
}

TEST(SessionStream, BdatStreamsToo) {
  SessionHarness h;
  open_transaction(h);
  std::string body = big_body(12000);
  std::string reply = h.feed("BDAT " + std::to_string(body.size()) + " LAST\r\n" + body);
  EXPECT_EQ(reply.rfind("250 2.6.0 <big@contoso.com>", 0), 0u) << reply;
  auto env = h.spool().list().front();
  std::string stored = *h.spool().content(env.id);
  EXPECT_EQ(stored.substr(stored.find("Subject: big")), body);
}

TEST(SessionStream, BdatSizeNearTwoToTheSixtyFourDoesNotWrap) {
  SessionHarness h;
  open_transaction(h);
  EXPECT_EQ(h.feed("BDAT 10\r\n0123456789"), "250 2.0.0 10 octets received\r\n");
  // 10 + (2^64 - 1) wraps to 9 in unchecked arithmetic: it must be refused.
  std::string reply = h.feed("BDAT 18446744073709551615 LAST\r\nabc");
  EXPECT_EQ(reply, "");  // the chunk is still being read (RFC 3030 §3) …
  EXPECT_TRUE(h.spool().list().empty());
  SessionHarness fresh;
  open_transaction(fresh);
  fresh.feed("BDAT 18446744073709551615\r\n");
  std::string junk(100000, 'x');
  for (int i = 0; i < 20; ++i) fresh.feed(junk);  // … but nothing of it is kept
  EXPECT_EQ(fresh.spool().stored_parts(), 0u);
}

TEST(SessionStream, EchoedMessageIdIsBoundedAndPrintable) {
  SessionHarness h;
  open_transaction(h);
  h.say("DATA");
  std::string id = "<" + std::string(900, 'x') + "\x1b[2J\r@x>";
  std::string reply = h.feed("Message-ID: " + id + "\r\n\r\nhi\r\n.\r\n");
  ASSERT_EQ(reply.rfind("250 2.6.0 <xxx", 0), 0u) << reply.substr(0, 80);
  EXPECT_LT(reply.size(), 400u);
  EXPECT_EQ(reply.find('\x1b'), std::string::npos);
  EXPECT_EQ(reply.find('\r'), reply.size() - 2);
  auto env = h.spool().list().front();
  EXPECT_LE(env.message_id.size(), 998u);
}

TEST(SessionStream, NonUtf8MessageIdIsQueued) {
  SessionHarness h;
  open_transaction(h);
  h.say("DATA");
  std::string reply = h.feed("Message-ID: <\xff@x>\r\n\r\nhi\r\n.\r\n");
  EXPECT_EQ(reply.rfind("250 2.6.0 <\\xff@x> [InternalId=", 0), 0u) << reply;
  EXPECT_EQ(h.spool().list().front().message_id, "<\xff@x>");
}

TEST(SessionStream, Smtputf8AddressesMustBeUtf8) {
  SessionHarness h;
  h.say(kHello);
  EXPECT_EQ(h.say("MAIL FROM:<chr\xffis@contoso.com> SMTPUTF8"),
            "553 5.1.7 Invalid address: not valid UTF-8\r\n");
  EXPECT_EQ(h.say("MAIL FROM:<chr\xc3\xa9s@contoso.com> SMTPUTF8"), "250 2.1.0 Sender OK\r\n");
  EXPECT_EQ(h.say("RCPT TO:<k\xe5te@example.test>"),
            "553 5.1.3 Invalid address: not valid UTF-8\r\n");
  EXPECT_EQ(h.say("RCPT TO:<kate@example.test>"), "250 2.1.5 Recipient OK\r\n");
}

}  // namespace
}  // namespace tern::test
