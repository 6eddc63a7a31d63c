// Sender authentication on the data path (session_data.cpp, message_auth.h):
// mail of a [[dkim]] domain from a relay network is stored signed, also when
// it streams in parts; tern's Received is not signed; Authentication-Results
// claiming tern's hostname are removed; the verdict of the sender checks puts
// its header on top, quarantines, or refuses with 550 5.7.509 storing nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "auth/dkim_verify.h"
#include "server/message_auth.h"
#include "session_harness.h"

namespace tern::test {
namespace {

constexpr const char* kRelayClient = "198.51.100.7";  // in the harness's [relay] networks

struct KeyFile {
  std::filesystem::path path;
  std::shared_ptr<const auth::DkimPrivateKey> key;
  explicit KeyFile(auth::DkimAlgorithm alg) {
    key = auth::DkimPrivateKey::generate(alg);
    path = std::filesystem::temp_directory_path() /
           ("tern-dkim-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(reinterpret_cast<std::uintptr_t>(this)) + ".pem");
    std::ofstream(path) << key->private_pem();
  }
  ~KeyFile() { std::filesystem::remove(path); }
};

std::shared_ptr<const server::DkimKeyring> keyring(const KeyFile& file) {
  config::Config c;
  c.dkim.push_back({"fabrikam.test", "s1", file.path});
  return server::DkimKeyring::load(c);
}

std::vector<auth::DkimResult> verify_stored(const std::string& stored, const KeyFile& file) {
  std::size_t end = stored.find("\r\n\r\n");
  auth::DkimVerifier v(std::time(nullptr));
  v.headers(std::string_view(stored).substr(0, end + 2));
  std::string_view body = std::string_view(stored).substr(end + 4);
  for (std::size_t i = 0; i < body.size(); i += 100000) v.body(body.substr(i, 100000));
  std::string record = file.key->txt_record();
  return v.finish_with([&](const std::string& name) {
    dns::TxtResult r;
    if (name == "s1._domainkey.fabrikam.test") r.records.push_back({record, 60});
    return r;
  });
}

std::string message(std::size_t body_lines) {
  std::string m =
      "From: Kate <kate@fabrikam.test>\r\nTo: joe@example.test\r\nSubject: signed\r\n"
      "Authentication-Results: mail.example.test; dkim=pass header.d=fabrikam.test\r\n"
      "Authentication-Results: other.example; spf=pass\r\n\r\n";
  for (std::size_t i = 0; i < body_lines; ++i) m += std::string(70, 'a' + i % 26) + "\r\n";
  return m;
}

std::string stored_message(SessionHarness& h) {
  auto envs = h.spool().list();
  if (envs.empty()) return {};
  return *h.spool().content(envs.back().id);
}

TEST(SessionSenderAuth, RelayedMailOfADkimDomainIsStoredSignedSmallAndStreamed) {
  for (auto alg : {auth::DkimAlgorithm::kRsaSha256, auth::DkimAlgorithm::kEd25519Sha256}) {
    for (std::size_t lines : {3u, 20000u}) {  // one piece; about 1.4 MB in parts
      KeyFile key(alg);
      SessionHarness h("", "", kRelayClient);
      h.set_dkim_keys(keyring(key));
      h.say("EHLO client.example");
      h.say("MAIL FROM:<kate@fabrikam.test>");
      h.say("RCPT TO:<joe@elsewhere.test>");
      h.say("DATA");
      std::string body = message(lines);
      std::string reply;
      for (std::size_t at = 0; at < body.size(); at += 65536)
        reply += h.feed(body.substr(at, 65536));
      reply += h.feed(".\r\n");
      ASSERT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
      std::string stored = stored_message(h);
      // The signature first, then tern's Received, then the Message-ID it added.
      ASSERT_EQ(stored.rfind("DKIM-Signature: v=1; a=", 0), 0u) << stored.substr(0, 300);
      std::size_t received = stored.find("\r\nReceived: ");
      std::size_t message_id = stored.find("\r\nMessage-ID: ");
      ASSERT_NE(received, std::string::npos);
      EXPECT_LT(received, message_id);
      std::string sig = stored.substr(0, received);
      EXPECT_EQ(sig.find("received"), std::string::npos) << sig;
      EXPECT_NE(sig.find("message-id"), std::string::npos) << sig;
      // The A-R claiming tern's hostname is gone; the other one stays.
      EXPECT_EQ(stored.find("Authentication-Results: mail.example.test"), std::string::npos);
      EXPECT_NE(stored.find("Authentication-Results: other.example; spf=pass"), std::string::npos);
      auto results = verify_stored(stored, key);
      ASSERT_EQ(results.size(), 1u);
      EXPECT_EQ(results[0].result, "pass") << results[0].reason << " lines=" << lines;
      EXPECT_EQ(h.spool().list().back().size, stored.size());
    }
  }
}

TEST(SessionSenderAuth, OtherDomainsAndUntrustedClientsAreNotSigned) {
  KeyFile key(auth::DkimAlgorithm::kEd25519Sha256);
  SessionHarness relay("", "", kRelayClient);
  relay.set_dkim_keys(keyring(key));
  std::string reply = relay.send_message("joe@contoso.test", "joe@elsewhere.test",
                                         "From: joe@contoso.test\r\n\r\nhi\r\n");
  ASSERT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
  EXPECT_EQ(stored_message(relay).find("DKIM-Signature"), std::string::npos);

  SessionHarness outside("", "", "192.0.2.10");
  outside.set_dkim_keys(keyring(key));
  reply = outside.send_message("kate@fabrikam.test", "kate@example.test",
                               "From: kate@fabrikam.test\r\n\r\nhi\r\n");
  ASSERT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
  EXPECT_EQ(stored_message(outside).find("DKIM-Signature"), std::string::npos);
}

TEST(SessionSenderAuth, WithoutFromTheEnvelopeDomainSigns) {
  KeyFile key(auth::DkimAlgorithm::kEd25519Sha256);
  SessionHarness h("", "", kRelayClient);
  h.set_dkim_keys(keyring(key));
  std::string reply = h.send_message("kate@fabrikam.test", "joe@elsewhere.test",
                                     "Subject: no author\r\n\r\nhi\r\n");
  ASSERT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
  EXPECT_EQ(stored_message(h).rfind("DKIM-Signature:", 0), 0u);
}

TEST(SessionSenderAuth, CheckedMailGetsTheVerdictsHeaderOnTop) {
  SessionHarness h;
  h.set_verify_senders(true);
  h.verdict.header = "Authentication-Results: mail.example.test; spf=none\r\n";
  std::string reply = h.send_message(
      "chris@contoso.test", "kate@example.test",
      "From: Chris <chris@Contoso.test>\r\nX-Tern-Dmarc: quarantine\r\n"
      "Authentication-Results: mail.example.test; dmarc=pass\r\nSubject: x\r\n\r\nhi\r\n");
  ASSERT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
  std::string stored = stored_message(h);
  EXPECT_EQ(stored.rfind("Authentication-Results: mail.example.test; spf=none\r\nReceived: ", 0),
            0u)
      << stored;
  EXPECT_EQ(stored.find("dmarc=pass"), std::string::npos);  // the forged one is gone
  EXPECT_EQ(stored.find("X-Tern-Dmarc"), std::string::npos);
  ASSERT_TRUE(h.last_check);
  EXPECT_EQ(h.last_check->from_domain, "contoso.test");
  EXPECT_EQ(h.last_check->mail_from, "chris@contoso.test");
  EXPECT_EQ(h.last_check->helo, "client.example");
  EXPECT_EQ(h.last_check->client_ip, "192.0.2.10");
  EXPECT_TRUE(h.last_check->dkim.empty());  // no signature
}

// A reader compares authserv-ids after unquoting and removing comments, and a
// bare CR becomes a line end when the message is sent on: each of these
// forged fields claims tern's own results and must go.
TEST(SessionSenderAuth, ForgedResultsInAnyFormAreRemoved) {
  SessionHarness h;
  h.set_verify_senders(true);
  h.verdict.header = "Authentication-Results: mail.example.test; spf=none\r\n";
  std::string reply = h.send_message(
      "chris@contoso.test", "kate@example.test",
      "From: chris@contoso.test\r\n"
      "Authentication-Results: \"mail.example.test\"; dmarc=pass reason=forged1\r\n"
      "Authentication-Results: MAIL.example.test.; dkim=pass reason=forged2\r\n"
      "Authentication-Results: mail.example(c).test; spf=pass reason=forged3\r\n"
      "X-A: x\rAuthentication-Results: mail.example.test; dmarc=pass reason=forged4\r\n"
      "Authentication-Results: mx.other.example; spf=pass reason=kept\r\n"
      "Subject: x\r\n\r\nhi\r\n");
  ASSERT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
  std::string stored = stored_message(h);
  for (const char* forged : {"forged1", "forged2", "forged3", "forged4"})
    EXPECT_EQ(stored.find(forged), std::string::npos) << forged << " in " << stored;
  EXPECT_NE(stored.find("reason=kept"), std::string::npos);
  ASSERT_TRUE(h.last_check);
  EXPECT_FALSE(h.last_check->from_unusable);
}

// Several From fields (or mailboxes) name no single author: DMARC cannot
// pass, and the check is told so (it quarantines, RFC 7489 §6.6.1).
TEST(SessionSenderAuth, SeveralFromFieldsAreNotADmarcNone) {
  SessionHarness h;
  h.set_verify_senders(true);
  std::string reply = h.send_message(
      "chris@contoso.test", "kate@example.test",
      "From: ceo@paypal.test\r\nFrom: ceo@paypal.test\r\nSubject: x\r\n\r\nhi\r\n");
  ASSERT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
  ASSERT_TRUE(h.last_check);
  EXPECT_TRUE(h.last_check->from_unusable);
  EXPECT_EQ(h.last_check->from_domain, "");
}

TEST(SessionSenderAuth, QuarantineAddsItsHeader) {
  SessionHarness h;
  h.set_verify_senders(true);
  h.verdict.header = "Authentication-Results: mail.example.test; dmarc=fail\r\n";
  h.verdict.action = auth::SenderAuthVerdict::Action::kQuarantine;
  std::string reply = h.send_message("chris@contoso.test", "kate@example.test",
                                     "From: chris@contoso.test\r\n\r\nhi\r\n");
  ASSERT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
  EXPECT_EQ(
      stored_message(h).rfind(
          "Authentication-Results: mail.example.test; dmarc=fail\r\nX-Tern-Dmarc: quarantine\r\n",
          0),
      0u);
}

TEST(SessionSenderAuth, DmarcRejectRefusesAndStoresNothingEvenWhenStreamed) {
  for (std::size_t lines : {1u, 20000u}) {
    SessionHarness h;
    h.set_verify_senders(true);
    h.verdict.action = auth::SenderAuthVerdict::Action::kReject;
    h.say("EHLO client.example");
    h.say("MAIL FROM:<chris@contoso.test>");
    h.say("RCPT TO:<kate@example.test>");
    h.say("DATA");
    std::string body = "From: chris@contoso.test\r\n\r\n";
    for (std::size_t i = 0; i < lines; ++i) body += std::string(70, 'x') + "\r\n";
    for (std::size_t at = 0; at < body.size(); at += 65536) h.feed(body.substr(at, 65536));
    std::string reply = h.feed(".\r\n");
    EXPECT_EQ(reply,
              "550 5.7.509 Access denied, sending domain contoso.test does not pass DMARC "
              "verification and has a DMARC policy of reject.\r\n");
    EXPECT_TRUE(h.spool().list().empty());
    EXPECT_EQ(h.abandoned(), lines > 1 ? 1 : 0);  // the stored parts are handed back
    // The session goes on.
    EXPECT_EQ(h.say("MAIL FROM:<chris@contoso.test>"), "250 2.1.0 Sender OK\r\n");
  }
}

TEST(SessionSenderAuth, DmarcRejectOffOnlyRecords) {
  SessionHarness h("", "[sender_auth]\ndmarc_reject = false\n");
  h.set_verify_senders(true);
  h.verdict.action = auth::SenderAuthVerdict::Action::kReject;
  std::string reply = h.send_message("chris@contoso.test", "kate@example.test",
                                     "From: chris@contoso.test\r\n\r\nhi\r\n");
  EXPECT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
}

TEST(SessionSenderAuth, DkimSignaturesOfCheckedMailAreVerified) {
  KeyFile key(auth::DkimAlgorithm::kEd25519Sha256);
  auth::DkimSigner signer(key.key, "fabrikam.test", "s1", std::time(nullptr));
  std::string headers = "From: kate@fabrikam.test\r\nSubject: s\r\n";
  signer.headers(headers);
  signer.body("hi\r\n");
  std::string content = signer.finish() + headers + "\r\nhi\r\n";
  SessionHarness h;
  h.set_verify_senders(true);
  std::string record = key.key->txt_record();
  h.dkim_keys_txt = [&](const std::string& name) {
    dns::TxtResult r;
    if (name == "s1._domainkey.fabrikam.test") r.records.push_back({record, 60});
    return r;
  };
  std::string reply = h.send_message("kate@fabrikam.test", "kate@example.test", content);
  ASSERT_EQ(reply.rfind("250 2.6.0", 0), 0u) << reply;
  ASSERT_TRUE(h.last_check);
  ASSERT_EQ(h.last_check->dkim.size(), 1u);
  EXPECT_EQ(h.last_check->dkim[0].result, "pass") << h.last_check->dkim[0].reason;
  EXPECT_EQ(h.last_check->dkim[0].domain, "fabrikam.test");
}

TEST(SessionSenderAuth, FromDomain) {
  auto domain = [](std::string_view section) {
    return server::from_domain(auth::split_header_fields(section));
  };
  EXPECT_EQ(domain("From: Kate <kate@Fabrikam.TEST>\r\n"), "fabrikam.test");
  EXPECT_EQ(domain("From: kate@fabrikam.test (Kate, <x@evil.test>)\r\n"), "fabrikam.test");
  EXPECT_EQ(domain("From: \"Doe, Kate\" <kate@fabrikam.test>\r\n"), "fabrikam.test");
  EXPECT_EQ(domain("From: a@one.test, b@two.test\r\n"), "");
  EXPECT_EQ(domain("From: a@one.test\r\nFrom: b@two.test\r\n"), "");
  EXPECT_EQ(domain("Subject: none\r\n"), "");
  EXPECT_EQ(domain("From: <a@bad domain>\r\n"), "");
  EXPECT_EQ(domain("From:\r\n kate@folded.test\r\n"), "folded.test");
}

TEST(SessionSenderAuth, BadKeyFileIsAClearError) {
  config::Config c;
  c.dkim.push_back({"fabrikam.test", "s1", "/nonexistent/key.pem"});
  try {
    server::DkimKeyring::load(c);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "[[dkim]] domain fabrikam.test: DKIM key /nonexistent/key.pem: cannot be read");
  }
}

}  // namespace
}  // namespace tern::test
