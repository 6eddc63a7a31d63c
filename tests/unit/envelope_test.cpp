// The envelope record (src/queue/envelope.cpp): every field round-trips
// losslessly whatever bytes it holds (issue: one non-UTF-8 byte in a
// Message-ID used to make the encoder throw and stop the server), and records
// that do not decode are refused with std::runtime_error, never a crash.
#include <gtest/gtest.h>

#include "queue/envelope.h"
#include "util/text.h"

namespace tern::queue {
namespace {

Envelope sample(const std::string& bytes) {
  Envelope e;
  e.id = 1234567890123;
  e.message_id = "<" + bytes + "@x>";
  e.sender = bytes + "@b.example";
  e.ret = smtp::DsnRet::kHeaders;
  e.envid = bytes;
  e.body = smtp::BodyType::k8BitMime;
  e.smtputf8 = true;
  e.arrival_ms = 1;
  e.next_attempt_ms = 2;
  e.size = 3;
  e.client_address = "127.0.0.1";
  e.client_helo = bytes;
  e.listener = "default";
  e.auth_user = bytes;
  e.held = "failed inside tern: " + bytes;
  Recipient r;
  r.address = bytes + "@example.test";
  r.local = true;
  r.notify = 3;
  r.orcpt_type = "utf-8";
  r.orcpt = bytes;
  r.state = RecipientState::kDeferred;
  r.attempts = 7;
  r.last_reply = "451 4.0.0 " + bytes;
  r.remote_host = bytes;
  r.delay_notified = true;
  e.recipients.push_back(r);
  return e;
}

void expect_same(const Envelope& a, const Envelope& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.message_id, b.message_id);
  EXPECT_EQ(a.sender, b.sender);
  EXPECT_EQ(a.ret, b.ret);
  EXPECT_EQ(a.envid, b.envid);
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(a.smtputf8, b.smtputf8);
  EXPECT_EQ(a.client_helo, b.client_helo);
  EXPECT_EQ(a.auth_user, b.auth_user);
  EXPECT_EQ(a.held, b.held);
  ASSERT_EQ(a.recipients.size(), b.recipients.size());
  const auto &x = a.recipients[0], &y = b.recipients[0];
  EXPECT_EQ(x.address, y.address);
  EXPECT_EQ(x.orcpt_type, y.orcpt_type);
  EXPECT_EQ(x.orcpt, y.orcpt);
  EXPECT_EQ(x.state, y.state);
  EXPECT_EQ(x.attempts, y.attempts);
  EXPECT_EQ(x.last_reply, y.last_reply);
  EXPECT_EQ(x.remote_host, y.remote_host);
  EXPECT_EQ(x.delay_notified, y.delay_notified);
}

TEST(Envelope, EveryByteRoundTrips) {
  const std::string cases[] = {
      "plain",
      "\xff",                          // the byte that used to stop tern
      std::string("nul\0inside", 10),  // NUL
      "caf\xc3\xa9",                   // valid UTF-8 stays a string
      "\xc0\xaf",                      // overlong '/'
      "\xed\xa0\x80",                  // a surrogate
      "\x1b[2J\r\n\x7f",               // control bytes
      "\xf4\x90\x80\x80",              // above U+10FFFF
  };
  for (const auto& bytes : cases) {
    SCOPED_TRACE(util::printable(bytes));
    Envelope e = sample(bytes);
    std::string record;
    ASSERT_NO_THROW(record = encode(e));
    expect_same(e, decode_envelope(record));
  }
}

TEST(Envelope, AllByteValuesRoundTrip) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  Envelope e = sample(all);
  expect_same(e, decode_envelope(encode(e)));
}

TEST(Envelope, ValidUtf8StaysReadableText) {
  Envelope e = sample("caf\xc3\xa9");
  EXPECT_NE(encode(e).find("caf\xc3\xa9@b.example"), std::string::npos);
}

TEST(Envelope, BrokenRecordsAreRefusedNotCrashing) {
  const char* records[] = {
      "",
      "not json",
      "[]",
      R"({"v":2,"id":1,"rc":[]})",
      R"({"v":"1","id":1,"rc":[]})",
      R"({"v":1,"rc":[]})",
      R"({"v":1,"id":"x","rc":[]})",
      R"({"v":1,"id":1,"rc":[{"a":{"b64":"!!"}}]})",
      R"({"v":1,"id":1,"rc":[{"a":5}]})",
      R"({"v":1,"id":1,"rc":[{"a":"x","s":99}]})",
      R"({"v":1,"id":1,"rc":[{"a":"x","o":[1]}]})",
      R"({"v":1,"id":1,"ret":9,"rc":[]})",
      R"({"v":1,"id":1,"ret":-1,"rc":[]})",
      R"({"v":1,"id":1,"b":-2,"rc":[]})",
      R"({"v":1,"id":1,"rc":[{"a":"x","nt":300}]})",
      R"({"v":1,"id":1,"f":[],"rc":[]})",
      R"({"v":1,"id":1,"f":"a@b.example","rc":[]})",  // no recipient: not "all done"
  };
  for (const char* r : records) {
    SCOPED_TRACE(r);
    EXPECT_THROW(decode_envelope(r), std::runtime_error);
  }
}

TEST(Utf8, ValidatesStrictly) {
  EXPECT_TRUE(util::is_valid_utf8(""));
  EXPECT_TRUE(util::is_valid_utf8("ascii"));
  EXPECT_TRUE(util::is_valid_utf8("\xe2\x82\xac"));      // €
  EXPECT_TRUE(util::is_valid_utf8("\xf0\x9f\x93\xa7"));  // 📧
  EXPECT_FALSE(util::is_valid_utf8("\xff"));
  EXPECT_FALSE(util::is_valid_utf8("\xc3"));          // cut short
  EXPECT_FALSE(util::is_valid_utf8("\xc1\xbf"));      // overlong
  EXPECT_FALSE(util::is_valid_utf8("\xe0\x80\xaf"));  // overlong
  EXPECT_FALSE(util::is_valid_utf8("\xed\xb0\x80"));  // surrogate
  EXPECT_FALSE(util::is_valid_utf8("\xf4\x90\x80\x80"));
  EXPECT_FALSE(util::is_valid_utf8("\x80"));
}

}  // namespace
}  // namespace tern::queue
