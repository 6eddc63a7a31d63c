// Every row of SPEC §3, driven through the session state machine: a table of
// command sequences and the exact reply the last command must get.
#include <gtest/gtest.h>

#include "server/auth.h"
#include "session_harness.h"

namespace tern::test {
namespace {

struct Row {
  const char* situation;
  std::vector<std::string> lines;  // all but the last are set-up
  const char* expected;            // the reply to the last line, exactly
  const char* listener = "";
};

const char* kHello = "EHLO contoso.com";
const char* kMail = "MAIL FROM:<chris@contoso.com>";
const char* kRcpt = "RCPT TO:<kate@example.test>";

const Row kRows[] = {
    {"HELO ok", {"HELO contoso.com"}, "250 mail.example.test Hello [192.0.2.10]\r\n"},
    {"EHLO bad domain", {"EHLO bad!domain"}, "501 5.5.4 Invalid domain name\r\n"},
    {"EHLO without domain", {"EHLO"}, "501 5.5.4 Invalid domain name\r\n"},
    {"HELO with empty label", {"HELO a..b"}, "501 5.5.4 Invalid domain name\r\n"},
    {"MAIL ok, space after colon",
     {kHello, "MAIL FROM: <chris@contoso.com>"},
     "250 2.1.0 Sender OK\r\n"},
    {"MAIL lower case", {kHello, "mail from:<chris@contoso.com>"}, "250 2.1.0 Sender OK\r\n"},
    {"MAIL null sender", {kHello, "MAIL FROM:<>"}, "250 2.1.0 Sender OK\r\n"},
    {"MAIL bad address",
     {kHello, "MAIL FROM:<chris@@contoso.com>"},
     "550 5.1.7 Invalid address\r\n"},
    {"MAIL unterminated",
     {kHello, "MAIL FROM:<chris@contoso.com"},
     "550 5.1.7 Invalid address\r\n"},
    {"MAIL auth required",
     {kHello, kMail},
     "530 5.7.1 Client was not authenticated\r\n",
     "auth = \"required\""},
    {"RCPT ok",
     {kHello, kMail, "RCPT TO: <kate@example.test> NOTIFY=success,failure"},
     "250 2.1.5 Recipient OK\r\n"},
    {"RCPT alias",
     {kHello, kMail, "RCPT TO:<Katherine@EXAMPLE.test>"},
     "250 2.1.5 Recipient OK\r\n"},
    {"RCPT bare postmaster", {kHello, kMail, "RCPT TO:<Postmaster>"}, "250 2.1.5 Recipient OK\r\n"},
    {"RCPT unknown user",
     {kHello, kMail, "RCPT TO:<nobody@example.test>"},
     "550 5.1.1 User unknown\r\n"},
    {"RCPT relay denied",
     {kHello, kMail, "RCPT TO:<kate@fabrikam.com>"},
     "550 5.7.54 Unable to relay recipient in non-accepted domain\r\n"},
    {"RCPT bad address",
     {kHello, kMail, "RCPT TO:<a b@example.test>"},
     "501 5.1.3 Invalid address\r\n"},
    {"DATA", {kHello, kMail, kRcpt, "DATA"}, "354 Start mail input; end with <CRLF>.<CRLF>\r\n"},
    {"QUIT", {"QUIT"}, "221 2.0.0 Service closing transmission channel\r\n"},
    {"unknown verb", {"HELLO there"}, "500 5.3.3 Unrecognized command\r\n"},
    {"empty line", {""}, "500 5.3.3 Unrecognized command\r\n"},
    {"RSET", {kHello, kMail, "RSET"}, "250 2.0.0 Resetting\r\n"},
    {"NOOP", {"NOOP"}, "250 2.0.0 OK\r\n"},
    {"NOOP with argument", {"noop hello"}, "250 2.0.0 OK\r\n"},
    {"RCPT before MAIL", {kHello, kRcpt}, "503 5.5.1 Bad sequence of commands\r\n"},
    {"DATA before RCPT", {kHello, kMail, "DATA"}, "503 5.5.1 Bad sequence of commands\r\n"},
    {"MAIL before EHLO", {kMail}, "503 5.5.1 Bad sequence of commands\r\n"},
    {"MAIL twice", {kHello, kMail, kMail}, "503 5.5.1 Bad sequence of commands\r\n"},
    {"DATA after rejected RCPT",
     {kHello, kMail, "RCPT TO:<x@example.test>", "DATA"},
     "503 5.5.1 Bad sequence of commands\r\n"},
    {"unknown MAIL parameter",
     {kHello, "MAIL FROM:<chris@contoso.com> FOO=BAR"},
     "555 5.5.4 Unsupported parameter\r\n"},
    {"unknown RCPT parameter",
     {kHello, kMail, "RCPT TO:<kate@example.test> XYZ"},
     "555 5.5.4 Unsupported parameter\r\n"},
    {"bad NOTIFY value",
     {kHello, kMail, "RCPT TO:<kate@example.test> NOTIFY=SOMETIMES"},
     "501 5.5.4 Invalid parameter syntax\r\n"},
    {"NOTIFY NEVER with others",
     {kHello, kMail, "RCPT TO:<kate@example.test> NOTIFY=NEVER,SUCCESS"},
     "501 5.5.4 Invalid parameter syntax\r\n"},
    {"DSN parameters accepted",
     {kHello, "MAIL FROM:<chris@contoso.com> RET=HDRS ENVID=QQ314159",
      "RCPT TO:<kate@example.test> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;kate+40example.test"},
     "250 2.1.5 Recipient OK\r\n"},
    {"bad ENVID xtext",
     {kHello, "MAIL FROM:<chris@contoso.com> ENVID=a+zz"},
     "501 5.5.4 Invalid parameter syntax\r\n"},
    {"SIZE over the limit",
     {kHello, "MAIL FROM:<chris@contoso.com> SIZE=37748737"},
     "552 5.3.4 Message size exceeds fixed maximum message size\r\n"},
    {"SIZE within the limit",
     {kHello, "MAIL FROM:<chris@contoso.com> SIZE=37748736 BODY=8BITMIME"},
     "250 2.1.0 Sender OK\r\n"},
    {"non-ASCII sender without SMTPUTF8",
     {kHello, "MAIL FROM:<chrís@contoso.com>"},
     "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter\r\n"},
    {"non-ASCII sender with SMTPUTF8",
     {kHello, "MAIL FROM:<chrís@contoso.com> SMTPUTF8"},
     "250 2.1.0 Sender OK\r\n"},
    {"VRFY",
     {"VRFY kate"},
     "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n"},
    {"EXPN", {"EXPN staff"}, "502 5.5.1 Command not implemented\r\n"},
    {"MAIL before STARTTLS where TLS is required",
     {kHello, kMail},
     "530 5.7.0 Must issue a STARTTLS command first\r\n",
     "tls = \"starttls\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\nrequire_tls = true"},
    {"STARTTLS not offered", {kHello, "STARTTLS"}, "502 5.5.1 Command not implemented\r\n"},
    {"command line too long", {std::string(600, 'A')}, "500 5.5.2 Line too long\r\n"},
    {"NOOP line too long", {"NOOP " + std::string(510, 'x')}, "500 5.5.2 Line too long\r\n"},
};

class SpecReplies : public ::testing::TestWithParam<Row> {};

TEST_P(SpecReplies, LastCommandGetsTheSpecReply) {
  const Row& row = GetParam();
  SessionHarness h(row.listener);
  std::string last;
  for (const auto& line : row.lines) last = h.say(line);
  EXPECT_EQ(last, row.expected) << row.situation;
}

INSTANTIATE_TEST_SUITE_P(Spec, SpecReplies, ::testing::ValuesIn(kRows));

TEST(Session, GreetingNamesHostAndDate) {
  SessionHarness h;
  std::string g = h.session().greeting().wire();
  EXPECT_EQ(g.rfind("220 mail.example.test tern ESMTP MAIL Service ready at ", 0), 0u) << g;
  EXPECT_NE(g.find(" 20"), std::string::npos);  // a year
}

TEST(Session, EhloAdvertisesExtensionsInSpecOrder) {
  SessionHarness h;
  EXPECT_EQ(h.say("EHLO contoso.com"),
            "250-mail.example.test Hello [192.0.2.10]\r\n"
            "250-SIZE 37748736\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n"
            "250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n");
}

TEST(Session, EhloOffersStartTlsOnlyBeforeTls) {
  SessionHarness h("tls = \"starttls\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"");
  h.set_tls_available(true);
  EXPECT_NE(h.say("EHLO contoso.com").find("250-STARTTLS\r\n"), std::string::npos);
  EXPECT_EQ(h.say("STARTTLS"), "220 2.0.0 SMTP server ready\r\n");
  EXPECT_TRUE(h.starttls_requested());
  EXPECT_EQ(h.say("EHLO contoso.com").find("STARTTLS"), std::string::npos);
}

TEST(Session, StartTlsForgetsEhloAndDiscardsPipelinedCommands) {
  SessionHarness h("tls = \"starttls\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"");
  h.set_tls_available(true);
  h.say("EHLO contoso.com");
  // A command injected in the same packet as STARTTLS must never run (CVE-2011-0411).
  EXPECT_EQ(h.feed("STARTTLS\r\nMAIL FROM:<evil@contoso.com>\r\n"),
            "220 2.0.0 SMTP server ready\r\n");
  EXPECT_EQ(h.say(kMail), "503 5.5.1 Bad sequence of commands\r\n");  // EHLO needed again
}

TEST(Session, QueuedReplyAfterTheSpoolCommits) {
  SessionHarness h;
  std::string reply = h.send_message("chris@contoso.com", "kate@example.test",
                                     "Subject: test\r\n\r\nThis is a test message.");
  ASSERT_EQ(h.spool().list().size(), 1u);
  auto env = h.spool().list().front();
  EXPECT_EQ(reply, "250 2.6.0 " + env.message_id + " [InternalId=" + std::to_string(env.id) +
                       ", Hostname=mail.example.test] Queued mail for delivery\r\n");
  EXPECT_EQ(env.sender, "chris@contoso.com");
  ASSERT_EQ(env.recipients.size(), 1u);
  EXPECT_EQ(env.recipients[0].address, "kate@example.test");
  EXPECT_TRUE(env.recipients[0].local);
}

TEST(Session, MessageTooBigIsRefusedAfterItsEnd) {
  SessionHarness h("max_message_size = 100");
  std::string reply =
      h.send_message("chris@contoso.com", "kate@example.test", std::string(200, 'x'));
  EXPECT_EQ(reply, "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_TRUE(h.spool().list().empty());
  EXPECT_EQ(h.say("NOOP"), "250 2.0.0 OK\r\n");  // the session goes on
}

TEST(Session, DataLineOver1000OctetsIsRefused) {
  SessionHarness h;
  std::string reply =
      h.send_message("chris@contoso.com", "kate@example.test", std::string(1200, 'x'));
  EXPECT_EQ(reply, "500 5.5.2 Line too long\r\n");
  EXPECT_TRUE(h.spool().list().empty());
}

TEST(Session, FullSpoolAtCommitGives452) {
  SessionHarness h;
  h.spool().fail_next = queue::SpoolStatus::kNoSpace;
  EXPECT_EQ(h.send_message("chris@contoso.com", "kate@example.test", "x"),
            "452 4.3.1 Insufficient system storage\r\n");
  EXPECT_TRUE(h.spool().list().empty());
}

TEST(Session, FullSpoolAtMailGives452) {
  SessionHarness h;
  h.spool().room = false;
  h.say(kHello);
  EXPECT_EQ(h.say(kMail), "452 4.3.1 Insufficient system storage\r\n");
}

TEST(Session, SpoolErrorIsATemporaryFailure) {
  SessionHarness h;
  h.spool().fail_next = queue::SpoolStatus::kError;
  EXPECT_EQ(h.send_message("chris@contoso.com", "kate@example.test", "x"),
            "451 4.3.0 Local error in processing, try again later\r\n");
}

TEST(Session, TooManyRecipients) {
  SessionHarness h("", "", "198.51.100.7");  // a relay network: any domain is fine
  h.say(kHello);
  h.say(kMail);
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(h.say("RCPT TO:<user" + std::to_string(i) + "@fabrikam.com>"),
              "250 2.1.5 Recipient OK\r\n");
  EXPECT_EQ(h.say("RCPT TO:<one-more@fabrikam.com>"), "452 4.5.3 Too many recipients\r\n");
}

TEST(Session, RelayNetworkMayRelay) {
  SessionHarness h("", "", "198.51.100.7");
  h.say(kHello);
  h.say(kMail);
  EXPECT_EQ(h.say("RCPT TO:<kate@fabrikam.com>"), "250 2.1.5 Recipient OK\r\n");
}

TEST(Session, TooManyErrorsCloses) {
  SessionHarness h;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(h.say("BOGUS"), "500 5.3.3 Unrecognized command\r\n");
  EXPECT_EQ(h.say("BOGUS"),
            "421 4.7.0 Too many errors on this connection, closing transmission channel\r\n");
  EXPECT_TRUE(h.closed());
}

TEST(Session, TimeoutReply) {
  SessionHarness h;
  EXPECT_EQ(h.session().timed_out().wire(), "421 4.4.2 mail.example.test Connection timed out\r\n");
}

TEST(Session, PipelinedCommandsAnsweredInOrder) {
  SessionHarness h;
  h.say(kHello);
  EXPECT_EQ(h.feed("MAIL FROM:<chris@contoso.com>\r\nRCPT TO:<kate@example.test>\r\n"
                   "RCPT TO:<nobody@example.test>\r\nDATA\r\n"),
            "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n550 5.1.1 User unknown\r\n"
            "354 Start mail input; end with <CRLF>.<CRLF>\r\n");
}

TEST(Session, ReceivedAndMessageIdArePrepended) {
  SessionHarness h;
  h.send_message("chris@contoso.com", "kate@example.test", "Subject: hi\r\n\r\nbody");
  auto env = h.spool().list().front();
  std::string stored = *h.spool().content(env.id);
  EXPECT_EQ(stored.rfind("Received: from client.example ([192.0.2.10])\r\n\tby mail.example.test (tern) "
                         "with ESMTP id " +
                             std::to_string(env.id) + "\r\n\tfor <kate@example.test>; ",
                         0),
            0u)
      << stored;
  EXPECT_NE(stored.find("\r\nMessage-ID: " + env.message_id + "\r\nSubject: hi\r\n\r\nbody\r\n"),
            std::string::npos)
      << stored;
}

TEST(Session, ExistingMessageIdIsKept) {
  SessionHarness h;
  std::string reply =
      h.send_message("chris@contoso.com", "kate@example.test",
                     "Message-ID: <c89b4fcc@contoso.com>\r\nSubject: hi\r\n\r\nbody");
  EXPECT_EQ(reply.rfind("250 2.6.0 <c89b4fcc@contoso.com> [InternalId=", 0), 0u) << reply;
}

TEST(Session, RoutingLoopIsRefused) {
  SessionHarness h;
  std::string headers;
  for (int i = 0; i < 50; ++i)
    headers += "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n";
  EXPECT_EQ(h.send_message("chris@contoso.com", "kate@example.test", headers + "\r\nbody"),
            "554 5.4.6 Routing loop detected\r\n");
}

TEST(Session, DsnParametersAreKeptWithTheEnvelope) {
  SessionHarness h;
  h.say(kHello);
  h.say("MAIL FROM:<chris@contoso.com> RET=HDRS ENVID=QQ+2B314159");
  h.say("RCPT TO:<kate@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;kate+40example.test");
  h.say("DATA");
  h.feed("Subject: x\r\n\r\ny\r\n.\r\n");
  auto env = h.spool().list().front();
  EXPECT_EQ(env.ret, smtp::DsnRet::kHeaders);
  EXPECT_EQ(env.envid, "QQ+314159");
  EXPECT_EQ(env.recipients[0].notify, smtp::notify::kSuccess | smtp::notify::kFailure);
  EXPECT_EQ(env.recipients[0].orcpt_type, "rfc822");
  EXPECT_EQ(env.recipients[0].orcpt, "kate@example.test");
}

TEST(Session, BdatChunksMakeOneMessage) {
  SessionHarness h;
  h.say(kHello);
  h.say(kMail);
  h.say(kRcpt);
  EXPECT_EQ(h.feed("BDAT 14\r\nSubject: x\r\n\r\n"), "250 2.0.0 14 octets received\r\n");
  std::string reply = h.feed("BDAT 6 LAST\r\nbody\r\n");
  EXPECT_EQ(reply.rfind("250 2.6.0 <", 0), 0u) << reply;
  auto env = h.spool().list().front();
  std::string stored = *h.spool().content(env.id);
  EXPECT_NE(stored.find("Subject: x\r\n\r\nbody\r\n"), std::string::npos);
}

TEST(Session, BdatWithoutTransactionStillConsumesTheChunk) {
  SessionHarness h;
  h.say(kHello);
  // The chunk holds something that looks like a command: it must not run.
  EXPECT_EQ(h.feed("BDAT 6\r\nQUIT\r\n"), "503 5.5.1 Bad sequence of commands\r\n");
  EXPECT_FALSE(h.closed());
}

TEST(Session, BdatWithoutSizeCloses) {
  SessionHarness h;
  h.say(kHello);
  EXPECT_EQ(h.say("BDAT LAST"), "501 5.5.4 Syntax error in parameters or arguments\r\n");
  EXPECT_TRUE(h.closed());
}

TEST(Session, BinaryMimeNeedsBdat) {
  SessionHarness h;
  h.say(kHello);
  h.say("MAIL FROM:<chris@contoso.com> BODY=BINARYMIME");
  h.say(kRcpt);
  EXPECT_EQ(h.say("DATA"), "503 5.5.1 BINARYMIME requires BDAT\r\n");
}

TEST(Session, RsetEndsTheTransaction) {
  SessionHarness h;
  h.say(kHello);
  h.say(kMail);
  h.say(kRcpt);
  h.say("RSET");
  EXPECT_EQ(h.say("DATA"), "503 5.5.1 Bad sequence of commands\r\n");
  EXPECT_EQ(h.say(kMail), "250 2.1.0 Sender OK\r\n");
}

TEST(Session, SeveralMessagesOnOneConnection) {
  SessionHarness h;
  for (int i = 0; i < 3; ++i) {
    h.say(i == 0 ? kHello : "RSET");
    h.say(kMail);
    h.say(kRcpt);
    h.say("DATA");
    ASSERT_EQ(h.feed("Subject: " + std::to_string(i) + "\r\n\r\nx\r\n.\r\n").rfind("250 2.6.0", 0),
              0u);
  }
  EXPECT_EQ(h.spool().list().size(), 3u);
}

}  // namespace
}  // namespace tern::test
