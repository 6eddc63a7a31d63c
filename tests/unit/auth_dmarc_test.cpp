// DMARC (auth/dmarc.h) and check_sender (auth/sender_auth.h) against a table
// resolver: record parsing, organisational domains from the Public Suffix
// List, relaxed and strict alignment, pass by SPF and by DKIM, fail with
// p=none/quarantine/reject, sp for subdomains, the organisational-domain
// fallback, pct sampling, temperror, and the Authentication-Results field.
#include <gtest/gtest.h>

#include "auth/dmarc.h"
#include "auth/sender_auth.h"
#include "auth_fake_resolver.h"

namespace tern::auth {
namespace {

using test_dns::run_task;
using test_dns::TableResolver;

TEST(DmarcRecordParse, TagsAndDefaults) {
  auto r = parse_dmarc_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=20");
  ASSERT_TRUE(r.record) << r.error;
  EXPECT_EQ(r.record->p, DmarcPolicy::kReject);
  EXPECT_EQ(r.record->sp, DmarcPolicy::kQuarantine);
  EXPECT_TRUE(r.record->strict_dkim);
  EXPECT_FALSE(r.record->strict_spf);
  EXPECT_EQ(r.record->pct, 20u);
  auto plain = parse_dmarc_record("v=DMARC1;p=none");
  ASSERT_TRUE(plain.record);
  EXPECT_EQ(plain.record->pct, 100u);
  EXPECT_FALSE(plain.record->sp);
  EXPECT_FALSE(parse_dmarc_record("v=DMARC1; p=bogus").record);
  EXPECT_FALSE(parse_dmarc_record("v=DMARC1; sp=reject").record);
  // §6.6.3 step 6: no valid p but a rua: act as p=none.
  auto rua = parse_dmarc_record("v=DMARC1; p=bogus; rua=mailto:d@example.com");
  ASSERT_TRUE(rua.record);
  EXPECT_EQ(rua.record->p, DmarcPolicy::kNone);
  EXPECT_FALSE(is_dmarc_record("v=spf1 -all"));
  EXPECT_FALSE(is_dmarc_record("p=reject; v=DMARC1"));
}

TEST(DmarcOrganizationalDomain, FromThePublicSuffixList) {
  EXPECT_EQ(organizational_domain("mail.example.com"), "example.com");
  EXPECT_EQ(organizational_domain("a.b.example.co.uk"), "example.co.uk");
  EXPECT_EQ(organizational_domain("Example.COM."), "example.com");
  EXPECT_EQ(organizational_domain("co.uk"), "co.uk");  // a public suffix itself
  EXPECT_EQ(organizational_domain("x.y.fabrikam.test"), "fabrikam.test");
  EXPECT_TRUE(dmarc_aligned("bounce.example.com", "example.com", false));
  EXPECT_FALSE(dmarc_aligned("bounce.example.com", "example.com", true));
  EXPECT_TRUE(dmarc_aligned("EXAMPLE.com", "example.com", true));
  EXPECT_FALSE(dmarc_aligned("a.co.uk", "b.co.uk", false));
}

DmarcInput input(const char* from, SpfResult spf, const char* spf_domain,
                 std::vector<DkimResult> dkim = {}, unsigned sample = 0) {
  return {from, spf, spf_domain, std::move(dkim), sample};
}

DkimResult dkim(const char* result, const char* domain) {
  return {result, domain, "s1", "abcdefgh", ""};
}

DmarcOutcome evaluate(TableResolver& dns, DmarcInput in) {
  return run_task(dmarc_check(dns, std::move(in)));
}

TEST(Dmarc, PassBySpfAlignmentAndByDkimAlignment) {
  TableResolver dns;
  dns.txt("_dmarc.example.com", "v=DMARC1; p=reject");
  auto spf = evaluate(dns, input("example.com", SpfResult::kPass, "bounces.example.com"));
  EXPECT_EQ(spf.result, DmarcResult::kPass);
  EXPECT_TRUE(spf.spf_aligned);
  auto by_dkim =
      evaluate(dns, input("example.com", SpfResult::kFail, "other.example",
                          {dkim("fail", "example.com"), dkim("pass", "mail.example.com")}));
  EXPECT_EQ(by_dkim.result, DmarcResult::kPass);
  EXPECT_TRUE(by_dkim.dkim_aligned);
  // SPF passes for a domain that is not aligned: no pass.
  auto unaligned = evaluate(dns, input("example.com", SpfResult::kPass, "other.example",
                                       {dkim("pass", "other.example")}));
  EXPECT_EQ(unaligned.result, DmarcResult::kFail);
  EXPECT_EQ(unaligned.disposition, DmarcPolicy::kReject);
}

TEST(Dmarc, StrictAlignment) {
  TableResolver dns;
  dns.txt("_dmarc.example.com", "v=DMARC1; p=quarantine; aspf=s; adkim=s");
  EXPECT_EQ(evaluate(dns, input("example.com", SpfResult::kPass, "bounces.example.com")).result,
            DmarcResult::kFail);
  EXPECT_EQ(evaluate(dns, input("example.com", SpfResult::kFail, "x.example",
                                {dkim("pass", "mail.example.com")}))
                .result,
            DmarcResult::kFail);
  EXPECT_EQ(evaluate(dns, input("example.com", SpfResult::kPass, "example.com")).result,
            DmarcResult::kPass);
}

TEST(Dmarc, FailWithEachPolicy) {
  for (auto [p, expected] :
       {std::pair{"none", DmarcPolicy::kNone}, std::pair{"quarantine", DmarcPolicy::kQuarantine},
        std::pair{"reject", DmarcPolicy::kReject}}) {
    TableResolver dns;
    dns.txt("_dmarc.example.com", std::string("v=DMARC1; p=") + p);
    auto out = evaluate(dns, input("example.com", SpfResult::kFail, "example.com"));
    EXPECT_EQ(out.result, DmarcResult::kFail) << p;
    EXPECT_EQ(out.policy, expected) << p;
    EXPECT_EQ(out.disposition, expected) << p;
  }
}

TEST(Dmarc, SubdomainPolicyAndOrganisationalFallback) {
  TableResolver dns;
  dns.txt("_dmarc.example.com", "v=DMARC1; p=none; sp=reject")
      .txt("_dmarc.own.example.com", "v=DMARC1; p=quarantine");
  auto sub = evaluate(dns, input("news.example.com", SpfResult::kFail, "x.example"));
  EXPECT_EQ(sub.policy_domain, "example.com");
  EXPECT_EQ(sub.published, DmarcPolicy::kNone);
  EXPECT_EQ(sub.policy, DmarcPolicy::kReject);
  EXPECT_EQ(sub.disposition, DmarcPolicy::kReject);
  auto org = evaluate(dns, input("example.com", SpfResult::kFail, "x.example"));
  EXPECT_EQ(org.disposition, DmarcPolicy::kNone);  // p, not sp, for the domain itself
  auto own = evaluate(dns, input("own.example.com", SpfResult::kFail, "x.example"));
  EXPECT_EQ(own.policy_domain, "own.example.com");
  EXPECT_EQ(own.disposition, DmarcPolicy::kQuarantine);
  // Without sp, subdomains get p.
  TableResolver plain;
  plain.txt("_dmarc.example.org", "v=DMARC1; p=reject");
  EXPECT_EQ(evaluate(plain, input("a.b.example.org", SpfResult::kFail, "x")).disposition,
            DmarcPolicy::kReject);
  EXPECT_EQ(plain.asked.back(), "TXT _dmarc.example.org");
}

TEST(Dmarc, NoRecordSeveralRecordsAndBrokenRecord) {
  TableResolver dns;
  dns.txt("_dmarc.two.example", "v=DMARC1; p=reject").txt("_dmarc.two.example", "v=DMARC1; p=none");
  dns.txt("_dmarc.broken.example", "v=DMARC1; p=sometimes");
  EXPECT_EQ(evaluate(dns, input("none.example", SpfResult::kFail, "x")).result, DmarcResult::kNone);
  EXPECT_EQ(evaluate(dns, input("two.example", SpfResult::kFail, "x")).result, DmarcResult::kNone);
  EXPECT_EQ(evaluate(dns, input("broken.example", SpfResult::kFail, "x")).result,
            DmarcResult::kPermerror);
  EXPECT_EQ(evaluate(dns, input("", SpfResult::kFail, "x")).result, DmarcResult::kNone);
}

TEST(Dmarc, PctSamplesDeterministically) {
  TableResolver dns;
  dns.txt("_dmarc.example.com", "v=DMARC1; p=reject; pct=30");
  auto in_sample = evaluate(dns, input("example.com", SpfResult::kFail, "x", {}, 29));
  auto outside = evaluate(dns, input("example.com", SpfResult::kFail, "x", {}, 30));
  EXPECT_EQ(in_sample.disposition, DmarcPolicy::kReject);
  EXPECT_EQ(outside.disposition, DmarcPolicy::kQuarantine);  // §6.6.4: the next lower policy
  dns.txt_records["_dmarc.example.com"] = {"v=DMARC1; p=quarantine; pct=0"};
  EXPECT_EQ(evaluate(dns, input("example.com", SpfResult::kFail, "x", {}, 0)).disposition,
            DmarcPolicy::kNone);
  EXPECT_EQ(dmarc_sample("192.0.2.1|a@b.example|b.example"),
            dmarc_sample("192.0.2.1|a@b.example|b.example"));
  EXPECT_LT(dmarc_sample("anything"), 100u);
}

TEST(Dmarc, TemporaryFailuresNeverFail) {
  TableResolver dns;
  dns.txt("_dmarc.example.com", "v=DMARC1; p=reject");
  dns.temporary = {"_dmarc.slow.example"};
  EXPECT_EQ(evaluate(dns, input("slow.example", SpfResult::kFail, "x")).result,
            DmarcResult::kTemperror);
  EXPECT_EQ(evaluate(dns, input("example.com", SpfResult::kTemperror, "example.com")).result,
            DmarcResult::kTemperror);
  EXPECT_EQ(evaluate(dns, input("example.com", SpfResult::kFail, "example.com",
                                {dkim("temperror", "example.com")}))
                .result,
            DmarcResult::kTemperror);
}

config::Config config_for_tests(bool dmarc_reject = true) {
  config::Config c;
  c.hostname = "mx.tern.test";
  c.sender_auth.verify = true;
  c.sender_auth.dmarc_reject = dmarc_reject;
  return c;
}

SenderAuthVerdict check(TableResolver& dns, SenderAuthInput in, bool dmarc_reject = true) {
  auto c = config_for_tests(dmarc_reject);
  return run_task(check_sender(in, c, dns, nullptr));
}

TEST(SenderAuth, HeaderAndActionForAFailingRejectDomain) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 ip4:198.51.100.0/24 -all")
      .txt("_dmarc.example.com", "v=DMARC1; p=reject");
  SenderAuthInput in{"192.0.2.1",
                     "client.example.net",
                     "alice@example.com",
                     "example.com",
                     {dkim("fail", "example.com")}};
  auto verdict = check(dns, in);
  EXPECT_EQ(verdict.action, SenderAuthVerdict::Action::kReject) << verdict.header;
  EXPECT_EQ(verdict.header,
            "Authentication-Results: mx.tern.test;\r\n"
            "\tspf=fail (matched -all in example.com) smtp.mailfrom=alice@example.com;\r\n"
            "\tdkim=fail header.d=example.com header.s=s1 header.b=abcdefgh;\r\n"
            "\tdmarc=fail (p=reject dis=reject) header.from=example.com\r\n");
  EXPECT_EQ(check(dns, in, false).action, SenderAuthVerdict::Action::kQuarantine);
}

TEST(SenderAuth, PassNullSenderQuarantineAndNoVerify) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all")
      .txt("_dmarc.example.com", "v=DMARC1; p=quarantine")
      .txt("relay.example.net", "v=spf1 ip4:192.0.2.1 -all");
  SenderAuthInput pass{"192.0.2.1", "relay.example.net", "bob@example.com", "example.com", {}};
  auto ok = check(dns, pass);
  EXPECT_EQ(ok.action, SenderAuthVerdict::Action::kAccept);
  EXPECT_NE(ok.header.find("\tspf=pass"), std::string::npos);
  EXPECT_NE(ok.header.find("\tdkim=none;\r\n"), std::string::npos);
  EXPECT_NE(ok.header.find("dmarc=pass (p=quarantine dis=none) header.from=example.com"),
            std::string::npos);
  SenderAuthInput bounce{"192.0.2.1", "relay.example.net", "", "example.com", {}};
  auto null_sender = check(dns, bounce);
  EXPECT_NE(null_sender.header.find("spf=pass (matched ip4:192.0.2.1 in relay.example.net) "
                                    "smtp.helo=relay.example.net;"),
            std::string::npos)
      << null_sender.header;
  EXPECT_EQ(null_sender.action, SenderAuthVerdict::Action::kQuarantine);  // HELO not aligned
  auto c = config_for_tests();
  c.sender_auth.verify = false;
  auto off = run_task(check_sender(pass, c, dns, nullptr));
  EXPECT_TRUE(off.header.empty());
}

TEST(SenderAuth, DnsTimeoutNeverRejects) {
  TableResolver dns;
  dns.txt("_dmarc.example.com", "v=DMARC1; p=reject");
  dns.temporary = {"example.com"};
  SenderAuthInput in{"192.0.2.1", "h.example.net", "a@example.com", "example.com", {}};
  auto verdict = check(dns, in);
  EXPECT_EQ(verdict.action, SenderAuthVerdict::Action::kAccept);
  EXPECT_NE(verdict.header.find("spf=temperror"), std::string::npos);
  EXPECT_NE(verdict.header.find("dmarc=temperror"), std::string::npos);
}

TEST(SenderAuth, HostileValuesCannotBreakTheField) {
  TableResolver dns;
  SenderAuthInput in{"192.0.2.1",
                     "h.example.net",
                     "\"a b\r\nX-Evil: 1\"@example.com",
                     "example.com",
                     {{"pass\r\nX", "ex(am)ple.com", "s;1", "b", "why)\r\n"}}};
  auto verdict = check(dns, in);
  std::string body = verdict.header.substr(0, verdict.header.size() - 2);
  for (std::size_t pos = 0; (pos = body.find('\n', pos)) != std::string::npos; ++pos) {
    EXPECT_EQ(body[pos + 1], '\t') << verdict.header;  // every line break is a fold
  }
  EXPECT_EQ(verdict.header.find("\nX-Evil"), std::string::npos);
}

}  // namespace
}  // namespace tern::auth
