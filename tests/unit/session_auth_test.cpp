// AUTH PLAIN and LOGIN through the session (RFC 4954), with a real crypt(3)
// hash, and the send-as rule of SPEC §3.
#include <gtest/gtest.h>

#include "server/auth.h"
#include "session_harness.h"
#include "util/base64.h"

namespace tern::test {
namespace {

std::string kate_mailbox() {
  static const std::string hash = server::hash_password("s3cret");
  return "[[mailbox]]\naddress = \"chris@example.test\"\nmaildir = \"mail/chris\"\npassword = \"" +
         hash + "\"\naliases = [\"christopher@example.test\"]\n";
}

SessionHarness plaintext_auth(std::string_view mode = "optional") {
  return SessionHarness("auth = \"" + std::string(mode) + "\"\nallow_plaintext_auth = true",
                        kate_mailbox());
}

std::string plain(std::string_view user, std::string_view pass) {
  std::string blob = std::string(1, '\0') + std::string(user) + '\0' + std::string(pass);
  return util::base64_encode(blob);
}

TEST(SessionAuth, EhloOffersAuthOnlyWhenAllowed) {
  auto h = plaintext_auth();
  EXPECT_NE(h.say("EHLO contoso.com").find("250-AUTH PLAIN LOGIN\r\n250-8BITMIME"),
            std::string::npos);
  SessionHarness no_plaintext("auth = \"optional\"", kate_mailbox());
  EXPECT_EQ(no_plaintext.say("EHLO contoso.com").find("AUTH"), std::string::npos);
}

TEST(SessionAuth, PlainWithInitialResponse) {
  auto h = plaintext_auth();
  h.say("EHLO contoso.com");
  EXPECT_EQ(h.say("AUTH PLAIN " + plain("chris@example.test", "s3cret")),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(h.session().authenticated_user(), "chris@example.test");
  EXPECT_EQ(h.say("AUTH PLAIN " + plain("chris@example.test", "s3cret")),
            "503 5.5.1 Already authenticated\r\n");
}

TEST(SessionAuth, PlainWithChallenge) {
  auto h = plaintext_auth();
  h.say("EHLO contoso.com");
  EXPECT_EQ(h.say("AUTH PLAIN"), "334 \r\n");
  EXPECT_EQ(h.say(plain("chris@example.test", "s3cret")),
            "235 2.7.0 Authentication successful\r\n");
}

TEST(SessionAuth, LoginExchange) {
  auto h = plaintext_auth();
  h.say("EHLO contoso.com");
  EXPECT_EQ(h.say("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(h.say(util::base64_encode("chris@example.test")), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(h.say(util::base64_encode("s3cret")), "235 2.7.0 Authentication successful\r\n");
}

TEST(SessionAuth, WrongPasswordAndUnknownUserFail) {
  auto h = plaintext_auth();
  h.say("EHLO contoso.com");
  EXPECT_EQ(h.say("AUTH PLAIN " + plain("chris@example.test", "wrong")),
            "535 5.7.3 Authentication unsuccessful\r\n");
  EXPECT_EQ(h.say("AUTH PLAIN " + plain("nobody@example.test", "s3cret")),
            "535 5.7.3 Authentication unsuccessful\r\n");
  EXPECT_TRUE(h.session().authenticated_user().empty());
}

TEST(SessionAuth, ThirdFailureCloses) {
  auto h = plaintext_auth();
  h.say("EHLO contoso.com");
  h.say("AUTH PLAIN " + plain("chris@example.test", "a"));
  h.say("AUTH PLAIN " + plain("chris@example.test", "b"));
  EXPECT_EQ(h.say("AUTH PLAIN " + plain("chris@example.test", "c")),
            "421 4.7.0 Too many errors on this connection, closing transmission channel\r\n");
  EXPECT_TRUE(h.closed());
}

TEST(SessionAuth, UnknownMechanism) {
  auto h = plaintext_auth();
  h.say("EHLO contoso.com");
  EXPECT_EQ(h.say("AUTH NTLM"), "504 5.7.4 Unrecognized authentication type\r\n");
}

TEST(SessionAuth, BadBase64AndCancel) {
  auto h = plaintext_auth();
  h.say("EHLO contoso.com");
  EXPECT_EQ(h.say("AUTH PLAIN !!!notbase64"), "501 5.5.2 Cannot decode response\r\n");
  h.say("AUTH LOGIN");
  EXPECT_EQ(h.say("*"), "501 5.0.0 Authentication cancelled\r\n");
  EXPECT_EQ(h.say("NOOP"), "250 2.0.0 OK\r\n");
}

TEST(SessionAuth, RequiredListenerAcceptsAfterAuth) {
  auto h = plaintext_auth("required");
  h.say("EHLO contoso.com");
  EXPECT_EQ(h.say("MAIL FROM:<chris@example.test>"), "530 5.7.1 Client was not authenticated\r\n");
  h.say("AUTH PLAIN " + plain("chris@example.test", "s3cret"));
  EXPECT_EQ(h.say("MAIL FROM:<chris@example.test>"), "250 2.1.0 Sender OK\r\n");
}

TEST(SessionAuth, SendAsSomeoneElseIsRefused) {
  auto h = plaintext_auth();
  h.say("EHLO contoso.com");
  h.say("AUTH PLAIN " + plain("chris@example.test", "s3cret"));
  EXPECT_EQ(h.say("MAIL FROM:<kate@example.test>"),
            "550 5.7.60 Client does not have permissions to send as this sender\r\n");
  EXPECT_EQ(h.say("MAIL FROM:<Christopher@example.test>"), "250 2.1.0 Sender OK\r\n");  // an alias
}

TEST(SessionAuth, AuthenticatedClientMayRelay) {
  auto h = plaintext_auth();
  h.say("EHLO contoso.com");
  h.say("AUTH PLAIN " + plain("chris@example.test", "s3cret"));
  h.say("MAIL FROM:<chris@example.test>");
  EXPECT_EQ(h.say("RCPT TO:<kate@fabrikam.com>"), "250 2.1.5 Recipient OK\r\n");
}

TEST(SessionAuth, BcryptAndYescryptHashesVerify) {
  for (const char* scheme : {"BLF-CRYPT", "YESCRYPT"}) {
    std::string hash = server::hash_password("s3cret", scheme);
    ASSERT_FALSE(hash.empty()) << scheme;
    EXPECT_TRUE(server::password_matches("s3cret", hash)) << hash;
    EXPECT_FALSE(server::password_matches("s3cres", hash)) << hash;
  }
  // A hash as /etc/shadow or `openssl passwd -6` writes it, without the {SCHEME} prefix.
  EXPECT_TRUE(server::password_matches(
      "tern-demo",
      "$6$TOh9g3Hb1zRkV7FZ$4ltCcgMmJTqZkwdWge2j/9u9NI7A6cndMl4/q9MFLGCXAmV/nJSDN4N.sKYvXltThNuBBY71ceen5T8dbSs6I."));
  EXPECT_EQ(server::hash_password("x", "MD5"), "");
}

TEST(SessionAuth, PasswordHashesVerify) {
  std::string hash = server::hash_password("correct horse");
  EXPECT_EQ(hash.rfind("{SHA512-CRYPT}$6$", 0), 0u);
  EXPECT_TRUE(server::password_matches("correct horse", hash));
  EXPECT_FALSE(server::password_matches("correct horsf", hash));
  EXPECT_FALSE(server::password_matches("x", "not a hash"));
}

}  // namespace
}  // namespace tern::test
