// DKIM (src/auth/dkim_*): the RFC 6376 §3.4.5 canonicalisation examples, the
// RFC 8463 Appendix A ed25519-sha256 test vector, sign-then-verify for both
// algorithms, the verification failures (tampering, expiry, keys) and a table
// of hostile tag lists.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <map>

#include "auth/dkim_canon.h"
#include "auth/dkim_sign.h"
#include "auth/dkim_verify.h"
#include "util/base64.h"

namespace tern::auth {
namespace {

std::string hex_sha(std::string_view s) {
  Sha256 h;
  h.update(s);
  return util::base64_encode(h.final());
}

TEST(DkimCanon, Rfc6376HeaderExample) {
  // RFC 6376 §3.4.5.
  auto fields = split_header_fields("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n");
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(canon_header(fields[0], Canon::kRelaxed), "a:X\r\n");
  EXPECT_EQ(canon_header(fields[1], Canon::kRelaxed), "b:Y Z\r\n");
  EXPECT_EQ(canon_header(fields[1], Canon::kSimple), "B : Y\t\r\n\tZ  \r\n");
}

std::string body_hash(Canon canon, std::string_view body, std::size_t chunk) {
  BodyHasher h(canon);
  for (std::size_t i = 0; i < body.size(); i += chunk) h.update(body.substr(i, chunk));
  return util::base64_encode(h.final());
}

TEST(DkimCanon, Rfc6376BodyExampleInEveryChunking) {
  // RFC 6376 §3.4.5; streamed one octet at a time up to whole, so a CR LF or a
  // white space run split between two chunks is canonicalised the same.
  std::string body = " C \r\nD \t E\r\n\r\n\r\n";
  for (std::size_t chunk = 1; chunk <= body.size(); ++chunk) {
    EXPECT_EQ(body_hash(Canon::kRelaxed, body, chunk), hex_sha(" C\r\nD E\r\n")) << chunk;
    EXPECT_EQ(body_hash(Canon::kSimple, body, chunk), hex_sha(" C \r\nD \t E\r\n")) << chunk;
  }
}

TEST(DkimCanon, EmptyBodiesAndMissingFinalLineEnd) {
  // §3.4.3: the empty simple body is CR LF; §3.4.4 (erratum 3192): the empty relaxed body is empty.
  EXPECT_EQ(body_hash(Canon::kSimple, "", 1), hex_sha("\r\n"));
  EXPECT_EQ(body_hash(Canon::kRelaxed, "", 1), hex_sha(""));
  EXPECT_EQ(body_hash(Canon::kRelaxed, "\r\n\r\n", 1), hex_sha(""));
  EXPECT_EQ(body_hash(Canon::kSimple, "\r\n\r\n", 1), hex_sha("\r\n"));
  EXPECT_EQ(body_hash(Canon::kRelaxed, "abc  ", 2), hex_sha("abc\r\n"));
  EXPECT_EQ(body_hash(Canon::kSimple, "abc", 2), hex_sha("abc\r\n"));
  // The well-known hash of the empty simple body (frXgFSm… = SHA-256 of CR LF).
  EXPECT_EQ(body_hash(Canon::kSimple, "", 1), "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
}

// RFC 8463 Appendix A.
constexpr const char* kRfc8463Seed = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
constexpr const char* kRfc8463Ed25519Txt =
    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
constexpr const char* kRfc8463RsaTxt =
    "v=DKIM1; k=rsa; "
    "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5"
    "bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/"
    "8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9Pzox"
    "ZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";
constexpr const char* kRfc8463Ed25519Sig =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    " subject : date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n";
constexpr const char* kRfc8463RsaSig =
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
    " date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
    " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
    " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n";
constexpr const char* kRfc8463Headers =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n";
constexpr const char* kRfc8463Body =
    "Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";

dns::TxtResult txt(std::string text) {
  dns::TxtResult r;
  r.records.push_back({std::move(text), 300});
  return r;
}

struct KeyTable {
  std::map<std::string, dns::TxtResult> records;
  dns::TxtResult operator()(const std::string& name) const {
    auto it = records.find(name);
    if (it == records.end()) return dns::TxtResult::failure(dns::DnsError::kNxDomain, name);
    return it->second;
  }
};

std::vector<DkimResult> verify(std::string_view headers, std::string_view body,
                               const KeyTable& keys, std::int64_t now = 1528637909 + 60) {
  DkimVerifier v(now);
  v.headers(headers);
  v.body(body);
  return v.finish_with(std::ref(keys));
}

TEST(DkimVerify, Rfc8463ExampleBothSignaturesPass) {
  KeyTable keys;
  keys.records["brisbane._domainkey.football.example.com"] = txt(kRfc8463Ed25519Txt);
  keys.records["test._domainkey.football.example.com"] = txt(kRfc8463RsaTxt);
  std::string headers = std::string(kRfc8463Ed25519Sig) + kRfc8463RsaSig + kRfc8463Headers;
  auto results = verify(headers, kRfc8463Body, keys);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].result, "pass") << results[0].reason;
  EXPECT_EQ(results[0].domain, "football.example.com");
  EXPECT_EQ(results[0].selector, "brisbane");
  EXPECT_EQ(results[0].b, "/gCrinpc");
  // The RSA key of the example has 1024 bits: the minimum RFC 8301 accepts.
  EXPECT_EQ(results[1].result, "pass") << results[1].reason;
}

std::shared_ptr<const DkimPrivateKey> rfc8463_key() {
  auto seed = util::base64_decode(kRfc8463Seed);
  EVP_PKEY* k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                             reinterpret_cast<const unsigned char*>(seed->data()),
                                             seed->size());
  return std::make_shared<DkimPrivateKey>(k, DkimAlgorithm::kEd25519Sha256);
}

TEST(DkimSign, Rfc8463SecretKeyGivesTheExampleSignature) {
  // Ed25519 is deterministic: the header hash input of the example, signed
  // with the example's secret key, must give the published b= exactly.
  auto key = rfc8463_key();
  EXPECT_EQ(key->public_record_value(), "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  auto fields = split_header_fields(kRfc8463Headers);
  std::vector<std::string> h{"from",       "to",   "subject", "date",
                             "message-id", "from", "subject", "date"};
  std::string data;
  for (const HeaderField* f : select_headers(fields, h)) data += canon_header(*f, Canon::kRelaxed);
  data +=
      "dkim-signature:v=1; a=ed25519-sha256; c=relaxed/relaxed; d=football.example.com; "
      "i=@football.example.com; q=dns/txt; s=brisbane; t=1528637909; h=from : to : subject : "
      "date : message-id : from : subject : date; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; "
      "b=";
  EXPECT_EQ(
      util::base64_encode(key->sign(data)),
      "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
  // And the body hash of the example.
  EXPECT_EQ(body_hash(Canon::kRelaxed, kRfc8463Body, 7),
            "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
}

struct Signed {
  std::string headers;  // DKIM-Signature first
  std::string body;
  KeyTable keys;
};

Signed sign_message(DkimAlgorithm alg, std::int64_t t = 1700000000) {
  auto key = alg == DkimAlgorithm::kRsaSha256 ? DkimPrivateKey::generate(alg) : rfc8463_key();
  Signed s;
  std::string headers =
      "From: Kate <kate@fabrikam.test>\r\nTo: joe@example.test\r\nSubject: hello  there\r\n"
      "Date: Thu, 3 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@fabrikam.test>\r\n";
  s.body = "Hello,\r\n\r\n  a line\twith  spaces \r\n\r\n\r\n";
  DkimSigner signer(key, "fabrikam.test", "s1", t);
  signer.headers(headers);
  for (std::size_t i = 0; i < s.body.size(); i += 5)
    signer.body(std::string_view(s.body).substr(i, 5));
  std::string sig = signer.finish();
  s.headers = sig + headers;
  s.keys.records["s1._domainkey.fabrikam.test"] = txt(key->txt_record());
  return s;
}

TEST(DkimSign, SignedMessagesVerifyAndTheFieldIsWellFormed) {
  for (auto alg : {DkimAlgorithm::kRsaSha256, DkimAlgorithm::kEd25519Sha256}) {
    Signed s = sign_message(alg);
    auto r = verify(s.headers, s.body, s.keys, 1700000100);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].result, "pass") << r[0].reason;
    EXPECT_NE(
        s.headers.find(alg == DkimAlgorithm::kRsaSha256 ? "a=rsa-sha256" : "a=ed25519-sha256"),
        std::string::npos);
    EXPECT_NE(s.headers.find("h=from:subject:date:to:message-id:from;"), std::string::npos)
        << s.headers;
    EXPECT_NE(s.headers.find("t=1700000000;"), std::string::npos);
    // Folded: no line of the field is longer than 78 octets.
    std::size_t end = s.headers.find("\r\nFrom:");
    std::string_view field(s.headers.data(), end);
    for (std::size_t pos = 0; pos < field.size();) {
      std::size_t nl = field.find("\r\n", pos);
      if (nl == std::string_view::npos) nl = field.size();
      EXPECT_LE(nl - pos, 78u);
      pos = nl + 2;
    }
  }
}

TEST(DkimVerify, TamperingExpiryAndKeysAreReported) {
  Signed s = sign_message(DkimAlgorithm::kEd25519Sha256);
  auto one = [](const std::vector<DkimResult>& r) { return r.size() == 1 ? r[0] : DkimResult{}; };
  // Body changed.
  EXPECT_EQ(one(verify(s.headers, s.body + "more\r\n", s.keys, 1700000100)).result, "fail");
  // Relaxed body: white space changes and trailing empty lines do not matter.
  EXPECT_EQ(
      one(verify(s.headers, "Hello,\r\n\r\n a  line with spaces\r\n", s.keys, 1700000100)).result,
      "pass");
  // A signed header changed.
  std::string h = s.headers;
  h.replace(h.find("hello  there"), 5, "HELLO");
  auto r = one(verify(h, s.body, s.keys, 1700000100));
  EXPECT_EQ(r.result, "fail");
  EXPECT_EQ(r.reason, "signature did not verify");
  // A second From added above (the oversigned From covers it).
  EXPECT_EQ(
      one(verify("From: evil@example.test\r\n" + s.headers, s.body, s.keys, 1700000100)).result,
      "fail");
  // An unsigned header added: still passes.
  EXPECT_EQ(one(verify("X-Other: 1\r\n" + s.headers, s.body, s.keys, 1700000100)).result, "pass");
  // No key record.
  KeyTable none;
  r = one(verify(s.headers, s.body, none, 1700000100));
  EXPECT_EQ(r.result, "permerror");
  EXPECT_EQ(r.reason, "no key");
  // A DNS failure for now.
  KeyTable temp;
  temp.records["s1._domainkey.fabrikam.test"] =
      dns::TxtResult::failure(dns::DnsError::kTemporary, "timeout");
  EXPECT_EQ(one(verify(s.headers, s.body, temp, 1700000100)).result, "temperror");
  // Revoked key, wrong key type.
  KeyTable revoked;
  revoked.records["s1._domainkey.fabrikam.test"] = txt("v=DKIM1; k=ed25519; p=");
  EXPECT_EQ(one(verify(s.headers, s.body, revoked, 1700000100)).reason, "key revoked");
  KeyTable rsa;
  rsa.records["s1._domainkey.fabrikam.test"] = txt(kRfc8463RsaTxt);
  EXPECT_EQ(one(verify(s.headers, s.body, rsa, 1700000100)).reason, "key type does not match a=");
  // Another key of the right type.
  KeyTable other;
  other.records["s1._domainkey.fabrikam.test"] =
      txt(DkimPrivateKey::generate(DkimAlgorithm::kEd25519Sha256)->txt_record());
  EXPECT_EQ(one(verify(s.headers, s.body, other, 1700000100)).result, "fail");
}

// Decoded keys are kept between messages: a record that changes under the
// same name must give the new key's result, and the old record's again after.
TEST(DkimVerify, DecodedKeysFollowTheRecordText) {
  Signed s = sign_message(DkimAlgorithm::kRsaSha256);
  KeyTable other;
  other.records["s1._domainkey.fabrikam.test"] =
      txt(DkimPrivateKey::generate(DkimAlgorithm::kRsaSha256)->txt_record());
  for (int round = 0; round < 2; ++round) {
    auto r = verify(s.headers, s.body, s.keys, 1700000100);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].result, "pass") << r[0].reason;
    r = verify(s.headers, s.body, other, 1700000100);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].result, "fail");
    EXPECT_EQ(r[0].reason, "signature did not verify");
  }
}

TEST(DkimVerify, ExpiredSignatureFails) {
  KeyTable keys;
  keys.records["brisbane._domainkey.football.example.com"] = txt(kRfc8463Ed25519Txt);
  // The example signature given an x= (the signature no longer verifies, but
  // expiry is decided first and reported as such).
  std::string sig = kRfc8463Ed25519Sig;
  sig.replace(sig.find("t=1528637909;"), 13, "t=1528637909; x=1528637999;");
  auto r = verify(sig + kRfc8463Headers, kRfc8463Body, keys, 1528640000);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "fail");
  EXPECT_EQ(r[0].reason, "signature expired");
}

TEST(DkimVerify, SmallRsaKeysFail) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(512));
  ASSERT_NE(k, nullptr);
  auto key = std::make_shared<DkimPrivateKey>(k, DkimAlgorithm::kRsaSha256);
  DkimSigner signer(key, "fabrikam.test", "s1", 1700000000);
  signer.headers("From: a@fabrikam.test\r\n");
  signer.body("x\r\n");
  std::string headers = signer.finish() + "From: a@fabrikam.test\r\n";
  KeyTable keys;
  keys.records["s1._domainkey.fabrikam.test"] = txt(key->txt_record());
  auto r = verify(headers, "x\r\n", keys, 1700000001);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].result, "fail");
  EXPECT_NE(r[0].reason.find("512 bits"), std::string::npos);
  // And such a key is refused for signing.
  EXPECT_THROW(DkimPrivateKey::from_pem(key->private_pem()), std::runtime_error);
}

TEST(DkimVerify, HostileTagListsArePermerrors) {
  struct Case {
    std::string field;
    std::string reason;
  };
  const std::string base = "v=1; a=ed25519-sha256; d=fabrikam.test; s=s1; h=from; bh=AAAA; b=AAAA";
  std::string many_fields = "h=from";  // matching costs names x fields: bounded
  for (int i = 0; i < 300; ++i) many_fields += ":to";
  std::vector<Case> cases{
      {"v=1; a=ed25519-sha256; d=fabrikam.test", "missing tag b="},
      {base + "; l=10", "body length tag not accepted"},
      {base + "; d=again.test", "malformed tag list"},
      {"v=1; a=rsa-sha1; d=f.test; s=s; h=from; bh=AAAA; b=AAAA",
       "rsa-sha1 not accepted (RFC 8301)"},
      {"v=2; a=rsa-sha256; d=f.test; s=s; h=from; bh=AAAA; b=AAAA", "unknown version v=2"},
      {"v=1; a=ed25519-sha256; d=f.test; s=s; h=to; bh=AAAA; b=AAAA", "From is not signed"},
      {"v=1; a=ed25519-sha256; d=f.test; s=s; h=from; bh=AAAA; b=!!!", "bad signature b="},
      {"v=1; a=ed25519-sha256; d=f.test; s=s; h=from; bh=A; b=AAAA", "bad body hash bh="},
      {"v=1; a=ed25519-sha256; d=f.test; s=../x; h=from; bh=AAAA; b=AAAA", "bad selector s="},
      {"v=1; a=ed25519-sha256; d=f..test; s=s; h=from; bh=AAAA; b=AAAA", "bad domain d="},
      {"v=1; a=ed25519-sha256; d=f.test; s=s; h=from; i=x@evil.test; bh=AAAA; b=AAAA",
       "i= is not in the d= domain"},
      {"v=1; a=ed25519-sha256; d=f.test; s=s; h=from; t=5; x=4; bh=AAAA; b=AAAA",
       "x= is not after t="},
      {"v=1; a=ed25519-sha256; d=f.test; s=s; h=from; t=99999999999999; bh=AAAA; b=AAAA",
       "bad timestamp t="},
      {"v=1; a=ed25519-sha256; c=fancy/simple; d=f.test; s=s; h=from; bh=AAAA; b=AAAA",
       "unknown canonicalization"},
      {"v=1; a=ed25519-sha256; q=http; d=f.test; s=s; h=from; bh=AAAA; b=AAAA",
       "no supported query method"},
      {"v=1;; a=x", "malformed tag list"},
      {"v=1; a=ed25519-sha256; d=f.test; s=s; " + many_fields + "; bh=AAAA; b=AAAA",
       "h= lists too many fields"},
      {"=1", "malformed tag list"},
      {"v", "malformed tag list"},
      {"", "missing tag v="},
      {std::string("v=1; a=\x01\xff\x80; d=") + '\0' + "x", "malformed tag list"},
      {"v=1; 9a=1", "malformed tag list"},
      {"v=1; a=ed25519-sha256; d=f.test; s=s; h=from:; bh=AAAA; b=AAAA", "bad h= list"},
      {std::string(20000, ';'), "malformed tag list"},
      {"v=1; a=ed25519-sha256; d=" + std::string(300, 'a') + "; s=s; h=from; bh=AAAA; b=AAAA",
       "bad domain d="},
  };
  KeyTable none;
  for (const auto& c : cases) {
    auto r = verify("DKIM-Signature: " + c.field + "\r\nFrom: a@f.test\r\n", "x\r\n", none, 10);
    ASSERT_EQ(r.size(), 1u) << c.field;
    EXPECT_EQ(r[0].result, "permerror") << c.field;
    EXPECT_EQ(r[0].reason, c.reason) << c.field;
  }
  // Every byte value in every position of a tag list: never a crash, never a pass.
  for (int b = 0; b < 256; ++b) {
    for (std::size_t pos = 0; pos < base.size(); pos += 3) {
      std::string f = base;
      f[pos] = static_cast<char>(b);
      auto r = verify("DKIM-Signature:" + f + "\r\nFrom: a@f.test\r\n", "", none, 10);
      ASSERT_EQ(r.size(), 1u);
      EXPECT_NE(r[0].result, "pass");
    }
  }
}

TEST(DkimVerify, SignaturesBeyondTheBoundAreNotLookedUp) {
  Signed s = sign_message(DkimAlgorithm::kEd25519Sha256);
  std::string one_sig = s.headers.substr(0, s.headers.find("From:"));
  std::string headers;
  for (int i = 0; i < 50; ++i) headers += one_sig;
  headers += s.headers.substr(s.headers.find("From:"));
  int lookups = 0;
  DkimVerifier v(1700000100);
  v.headers(headers);
  v.body(s.body);
  auto r = v.finish_with([&](const std::string& name) {
    ++lookups;
    return s.keys(name);
  });
  ASSERT_EQ(r.size(), 50u);
  EXPECT_EQ(lookups, 10);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(r[i].result, "pass");
  for (std::size_t i = 10; i < 50; ++i) EXPECT_EQ(r[i].reason, "too many signatures");
}

TEST(DkimVerify, KeyRecordParsing) {
  EXPECT_TRUE(parse_dkim_key_record("p=AAAA").key);
  EXPECT_EQ(parse_dkim_key_record("k=dsa; p=AAAA").error, "unknown key type k=dsa");
  EXPECT_EQ(parse_dkim_key_record("v=DKIM2; p=AAAA").error, "not a DKIM1 key record");
  EXPECT_EQ(parse_dkim_key_record("p=AAAA; v=DKIM1").error,
            "v= is not the first tag of the key record");
  EXPECT_EQ(parse_dkim_key_record("h=sha1; p=AAAA").error, "key not for sha256");
  EXPECT_EQ(parse_dkim_key_record("s=tlsrpt; p=AAAA").error, "key not for email");
  EXPECT_EQ(parse_dkim_key_record("k=rsa").error, "key record without p=");
  EXPECT_TRUE(parse_dkim_key_record("v=DKIM1; t=y:s; p=").key->strict_identity);
  // A 100 KB record: parsed without trouble (not a usable key).
  EXPECT_FALSE(parse_dkim_key_record("v=DKIM1; p=" + std::string(100000, 'A') + "!").key);
}

class FakeResolver : public dns::Resolver {
 public:
  std::map<std::string, dns::TxtResult> records;
  std::vector<std::string> asked;
  net::awaitable<dns::MxResult> mx(std::string d) override {
    co_return dns::MxResult::failure(dns::DnsError::kTemporary, d);
  }
  net::awaitable<dns::AddressResult> addresses(std::string h) override {
    co_return dns::AddressResult::failure(dns::DnsError::kTemporary, h);
  }
  net::awaitable<dns::TxtResult> txt(std::string name) override {
    asked.push_back(name);
    auto it = records.find(name);
    if (it == records.end()) co_return dns::TxtResult::failure(dns::DnsError::kNxDomain, name);
    co_return it->second;
  }
};

TEST(DkimVerify, FinishAsksTheResolver) {
  Signed s = sign_message(DkimAlgorithm::kRsaSha256);
  FakeResolver resolver;
  resolver.records = s.keys.records;
  asio::io_context io;
  std::vector<DkimResult> results;
  DkimVerifier v(1700000100);
  v.headers(s.headers);
  v.body(s.body);
  asio::co_spawn(
      io, [&]() -> net::awaitable<void> { results = co_await v.finish(resolver); }, asio::detached);
  io.run();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].result, "pass") << results[0].reason;
  EXPECT_EQ(resolver.asked, std::vector<std::string>{"s1._domainkey.fabrikam.test"});
}

}  // namespace
}  // namespace tern::auth
