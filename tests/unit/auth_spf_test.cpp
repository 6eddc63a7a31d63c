// SPF (auth/spf.h) against a table resolver: the macro examples of RFC 7208
// §7.4, each mechanism and qualifier, record selection, syntax errors, the
// 10-lookup, 2-void and 10-MX limits (§4.6.4), include/redirect loops and
// results, temporary DNS failures, and the HELO identity of the null sender.
#include <gtest/gtest.h>

#include "auth/spf.h"
#include "auth_fake_resolver.h"

namespace tern::auth {
namespace {

using test_dns::run_task;
using test_dns::TableResolver;

SpfMacroContext rfc_context(const char* ip) {
  return {"strong-bad@email.example.com", "email.example.com", "mx.example.org",
          *util::IpAddress::parse(ip)};
}

TEST(SpfMacros, Rfc7208Section74Examples) {
  auto c = rfc_context("192.0.2.3");
  struct Case {
    const char* spec;
    const char* expanded;
  } cases[] = {
      {"%{s}", "strong-bad@email.example.com"},
      {"%{o}", "email.example.com"},
      {"%{d}", "email.example.com"},
      {"%{d4}", "email.example.com"},
      {"%{d3}", "email.example.com"},
      {"%{d2}", "example.com"},
      {"%{d1}", "com"},
      {"%{dr}", "com.example.email"},
      {"%{d2r}", "example.email"},
      {"%{l}", "strong-bad"},
      {"%{l-}", "strong.bad"},
      {"%{lr}", "strong-bad"},
      {"%{lr-}", "bad.strong"},
      {"%{l1r-}", "strong"},
      {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
      {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
      {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
      {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
      {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
      {"%{S}", "strong-bad%40email.example.com"},
      {"%{h}", "mx.example.org"},
      {"%{p}", "unknown"},
      {"a%%b%_c%-d", "a%b c%20d"},
  };
  for (const auto& t : cases) {
    EXPECT_EQ(expand_spf_macros(t.spec, c).value_or("<error>"), t.expanded) << t.spec;
  }
  auto c6 = rfc_context("2001:db8::cb01");
  EXPECT_EQ(expand_spf_macros("%{ir}.%{v}._spf.%{d2}", c6).value_or("<error>"),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

// A stranger's record may ask for thousands of macros of a long local part:
// the expansion stops (permerror) instead of growing to megabytes.
TEST(SpfMacros, ExpansionIsBounded) {
  auto c = rfc_context("192.0.2.3");
  std::string local(200, 'a');
  for (std::size_t i = 1; i < local.size(); i += 2) local[i] = '.';
  c.sender = local + "@example.com";
  std::string spec;
  for (int i = 0; i < 2000; ++i) spec += "%{s}";
  EXPECT_FALSE(expand_spf_macros(spec + ".com", c).has_value());
  EXPECT_TRUE(expand_spf_macros("%{s}.com", c).has_value());
}

TEST(SpfMacros, MalformedMacrosAreErrors) {
  auto c = rfc_context("192.0.2.3");
  for (const char* spec : {"%{x}", "%{d0}", "%{d", "%x", "%", "%{}", "%{c}", "%{d2*}", "a b"}) {
    EXPECT_FALSE(expand_spf_macros(spec, c).has_value()) << spec;
  }
  EXPECT_TRUE(expand_spf_macros("%{c}", c, true).has_value());
}

SpfOutcome check(TableResolver& dns, const char* ip, const char* sender,
                 const char* helo = "helo.example.org") {
  return run_task(spf_check_sender(dns, ip, sender, helo));
}

SpfResult result(TableResolver& dns, const char* ip, const char* sender = "u@example.com") {
  return check(dns, ip, sender).result;
}

TEST(Spf, ResultsOfEachQualifierAndMechanism) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx ~all")
      .host("example.com", "198.51.100.1")
      .mx("example.com", 10, "mx.example.com")
      .host("mx.example.com", "198.51.100.2")
      .host("mx.example.com", "2001:db8:1::25");
  EXPECT_EQ(result(dns, "192.0.2.77"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "2001:db8:ffff::1"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "198.51.100.1"), SpfResult::kPass);  // a
  EXPECT_EQ(result(dns, "198.51.100.2"), SpfResult::kPass);  // mx
  EXPECT_EQ(result(dns, "203.0.113.9"), SpfResult::kSoftfail);
  EXPECT_EQ(result(dns, "::ffff:192.0.2.5"), SpfResult::kPass);  // IPv4-mapped counts as IPv4

  TableResolver m;
  m.txt("mapped.example", "v=spf1 ip6:::ffff:192.0.2.0/120 ip6:2001:db8::/127 -all");
  EXPECT_EQ(result(m, "192.0.2.1", "u@mapped.example"), SpfResult::kFail);
  EXPECT_EQ(result(m, "2001:db8::1", "u@mapped.example"), SpfResult::kPass);
  EXPECT_EQ(result(m, "2001:db8::2", "u@mapped.example"), SpfResult::kFail);

  TableResolver q;
  q.txt("fail.example", "v=spf1 -all").txt("neutral.example", "v=spf1 ?all");
  q.txt("empty.example", "v=spf1").txt("plus.example", "v=spf1 +all");
  EXPECT_EQ(result(q, "192.0.2.1", "u@fail.example"), SpfResult::kFail);
  EXPECT_EQ(result(q, "192.0.2.1", "u@neutral.example"), SpfResult::kNeutral);
  EXPECT_EQ(result(q, "192.0.2.1", "u@empty.example"), SpfResult::kNeutral);
  EXPECT_EQ(result(q, "192.0.2.1", "u@plus.example"), SpfResult::kPass);
  EXPECT_EQ(result(q, "192.0.2.1", "u@nothing.example"), SpfResult::kNone);
}

TEST(Spf, CidrLengthsOnAAndMx) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 a:hosts.example.com/24//64 mx/28 -all")
      .host("hosts.example.com", "192.0.2.200")
      .host("hosts.example.com", "2001:db8:5:5::1")
      .mx("example.com", 10, "mx.example.com")
      .host("mx.example.com", "198.51.100.16");
  EXPECT_EQ(result(dns, "192.0.2.1"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "2001:db8:5:5:ffff::1"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "2001:db8:5:6::1"), SpfResult::kFail);
  EXPECT_EQ(result(dns, "198.51.100.31"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "198.51.100.32"), SpfResult::kFail);
}

TEST(Spf, ExistsWithMacros) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all")
      .host("2.2.0.192.user._spf.example.com", "127.0.0.2");
  EXPECT_EQ(result(dns, "192.0.2.2", "user@example.com"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "192.0.2.3", "user@example.com"), SpfResult::kFail);
}

TEST(Spf, IncludeAndRedirect) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 include:_spf.provider.example -all")
      .txt("_spf.provider.example", "v=spf1 ip4:192.0.2.0/24 ?all")
      .txt("redir.example", "v=spf1 redirect=example.com")
      .txt("noinc.example", "v=spf1 include:missing.example -all")
      .txt("noredir.example", "v=spf1 redirect=missing.example")
      .txt("allwins.example", "v=spf1 ?all redirect=example.com");
  EXPECT_EQ(result(dns, "192.0.2.9"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "198.51.100.9"), SpfResult::kFail);  // the include's ?all: no match
  EXPECT_EQ(result(dns, "192.0.2.9", "u@redir.example"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "198.51.100.9", "u@redir.example"), SpfResult::kFail);
  EXPECT_EQ(result(dns, "192.0.2.9", "u@noinc.example"), SpfResult::kPermerror);
  EXPECT_EQ(result(dns, "192.0.2.9", "u@noredir.example"), SpfResult::kPermerror);
  EXPECT_EQ(result(dns, "192.0.2.9", "u@allwins.example"), SpfResult::kNeutral);
}

TEST(Spf, IncludeAndRedirectLoopsEndInPermerror) {
  TableResolver dns;
  dns.txt("loop.example", "v=spf1 include:loop.example -all")
      .txt("a.example", "v=spf1 redirect=b.example")
      .txt("b.example", "v=spf1 redirect=a.example");
  auto loop = check(dns, "192.0.2.1", "u@loop.example");
  EXPECT_EQ(loop.result, SpfResult::kPermerror);
  EXPECT_EQ(loop.dns_lookups, kSpfMaxLookups + 1);
  EXPECT_EQ(result(dns, "192.0.2.1", "u@a.example"), SpfResult::kPermerror);
}

TEST(Spf, TenLookupsAllowedEleventhIsPermerror) {
  TableResolver dns;
  std::string ten = "v=spf1", eleven;
  for (int i = 0; i < 10; ++i) {
    std::string name = "h" + std::to_string(i) + ".example.com";
    dns.host(name, "198.51.100.1");
    ten += " a:" + name;
  }
  eleven = ten + " a:h0.example.com";
  dns.txt("ten.example", ten + " ip4:192.0.2.1 -all")
      .txt("eleven.example", eleven + " ip4:192.0.2.1 -all");
  EXPECT_EQ(result(dns, "192.0.2.1", "u@ten.example"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "192.0.2.1", "u@eleven.example"), SpfResult::kPermerror);
  // ip4/all cost nothing: a match before the eleventh lookup still passes.
  dns.txt("early.example", "v=spf1 ip4:192.0.2.1 " + eleven.substr(7) + " -all");
  EXPECT_EQ(result(dns, "192.0.2.1", "u@early.example"), SpfResult::kPass);
}

TEST(Spf, TwoVoidLookupsAllowedThirdIsPermerror) {
  TableResolver dns;
  dns.txt("two.example", "v=spf1 a:void1.example mx:void2.example ip4:192.0.2.1 -all")
      .txt("three.example",
           "v=spf1 a:void1.example mx:void2.example exists:void3.example ip4:192.0.2.1 -all")
      .txt("nodata.example", "v=spf1 a:txtonly.example a:void1.example a:void2.example -all")
      .txt("txtonly.example", "v=spf1 -all");
  EXPECT_EQ(result(dns, "192.0.2.1", "u@two.example"), SpfResult::kPass);
  EXPECT_EQ(result(dns, "192.0.2.1", "u@three.example"), SpfResult::kPermerror);
  EXPECT_EQ(result(dns, "192.0.2.1", "u@nodata.example"), SpfResult::kPermerror);  // NODATA is void
}

TEST(Spf, MoreThanTenMxNamesIsPermerror) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 mx -all");
  for (int i = 0; i < 11; ++i) {
    std::string host = "mx" + std::to_string(i) + ".example.com";
    dns.mx("example.com", 10, host).host(host, "198.51.100." + std::to_string(i + 1));
  }
  EXPECT_EQ(result(dns, "198.51.100.1"), SpfResult::kPermerror);
  dns.mx_records["example.com"].pop_back();
  EXPECT_EQ(result(dns, "198.51.100.10"), SpfResult::kPass);
}

TEST(Spf, SyntaxErrorsAndRecordSelection) {
  const char* bad[] = {
      "v=spf1 ip4:192.0.2.300 -all",
      "v=spf1 ip4:192.0.2.0/33",
      "v=spf1 ip6:2001:db8::/129",
      "v=spf1 a/024",
      "v=spf1 all:x",
      "v=spf1 foo:bar",
      "v=spf1 include",
      "v=spf1 include:",
      "v=spf1 a:example",
      "v=spf1 exists:%{z}.x.example",
      "v=spf1 redirect=a.example redirect=b.example",
      "v=spf1 1x=y",
      "v=spf1 -redirect=a.example",
      "v=spf1 a:1.2.3.4",
      "v=spf1 ip4:192.0.2.1 unknown-mech -all",
  };
  for (const char* record : bad) {
    TableResolver dns;
    dns.txt("example.com", record);
    EXPECT_EQ(result(dns, "192.0.2.1"), SpfResult::kPermerror) << record;
  }
  TableResolver dns;
  dns.txt("two.example", "v=spf1 -all").txt("two.example", "v=spf1 +all");
  dns.txt("other.example", "v=spf10 -all").txt("other.example", "something else");
  dns.txt("mod.example", "v=spf1 foo=bar.%{d} -all");
  dns.txt("case.example", "V=SPF1 IP4:192.0.2.1 -ALL");
  EXPECT_EQ(result(dns, "192.0.2.1", "u@two.example"), SpfResult::kPermerror);
  EXPECT_EQ(result(dns, "192.0.2.1", "u@other.example"), SpfResult::kNone);
  EXPECT_EQ(result(dns, "192.0.2.1", "u@mod.example"),
            SpfResult::kFail);  // unknown modifier ignored
  EXPECT_EQ(result(dns, "192.0.2.1", "u@case.example"), SpfResult::kPass);
}

TEST(Spf, TemporaryFailuresGiveTemperror) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 include:slow.example -all")
      .txt("a.example", "v=spf1 a:slow.example -all");
  dns.temporary = {"slow.example", "down.example"};
  EXPECT_EQ(result(dns, "192.0.2.1"), SpfResult::kTemperror);
  EXPECT_EQ(result(dns, "192.0.2.1", "u@a.example"), SpfResult::kTemperror);
  EXPECT_EQ(result(dns, "192.0.2.1", "u@down.example"), SpfResult::kTemperror);
}

TEST(Spf, NoQueryStartsAfterTheTimeLimit) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 -all");
  auto ip = *util::IpAddress::parse("192.0.2.1");
  auto late = run_task(spf_check_host(dns, ip, "example.com", "u@example.com", "h.example",
                                      std::chrono::milliseconds(0)));
  EXPECT_EQ(late.result, SpfResult::kTemperror);
  EXPECT_TRUE(dns.asked.empty());
  auto in_time = run_task(spf_check_host(dns, ip, "example.com", "u@example.com", "h.example"));
  EXPECT_EQ(in_time.result, SpfResult::kFail);
}

TEST(Spf, NullSenderChecksTheHeloIdentity) {
  TableResolver dns;
  dns.txt("helo.example.org", "v=spf1 exists:%{l}.%{o}.x.example -all")
      .host("postmaster.helo.example.org.x.example", "127.0.0.2");
  auto outcome = check(dns, "192.0.2.1", "", "helo.example.org");
  EXPECT_EQ(outcome.result, SpfResult::kPass) << outcome.reason;
  EXPECT_EQ(outcome.domain, "helo.example.org");
  EXPECT_EQ(check(dns, "192.0.2.1", "", "[192.0.2.1]").result, SpfResult::kNone);
  EXPECT_EQ(check(dns, "192.0.2.1", "u@localhost").result, SpfResult::kNone);  // one label
}

TEST(Spf, PtrCountsButNeverMatches) {
  TableResolver dns;
  dns.txt("example.com", "v=spf1 ptr ?all");
  auto outcome = check(dns, "192.0.2.1", "u@example.com");
  EXPECT_EQ(outcome.result, SpfResult::kNeutral);
  EXPECT_EQ(outcome.dns_lookups, 1);
}

}  // namespace
}  // namespace tern::auth
