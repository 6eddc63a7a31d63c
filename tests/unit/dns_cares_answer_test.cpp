// dns/cares_answer: DNS answer messages (RFC 1035 §4.1) built by hand, and
// one captured from dnsmasq, parsed into MX and address records with TTLs;
// c-ares statuses mapped to DnsError kinds; A and AAAA merged.
#include <ares.h>
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "dns/cares_answer.h"
#include "dns/mx_route.h"
#include "dns/resolver_cares.h"

namespace tern::dns {
namespace {

using Bytes = std::vector<unsigned char>;

void put16(Bytes& b, unsigned v) {
  b.push_back(static_cast<unsigned char>(v >> 8));
  b.push_back(static_cast<unsigned char>(v));
}

Bytes name(std::string_view n) {
  Bytes out;
  while (!n.empty()) {
    auto dot = n.find('.');
    auto label = n.substr(0, dot);
    out.push_back(static_cast<unsigned char>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    n = dot == std::string_view::npos ? "" : n.substr(dot + 1);
  }
  out.push_back(0);
  return out;
}

struct Rr {
  unsigned type;
  std::uint32_t ttl;
  Bytes data;
};

// A response to "qname qtype" whose answers all belong to qname (pointer 0xC00C).
Bytes response(std::string_view qname, unsigned qtype, const std::vector<Rr>& answers,
               unsigned rcode = 0) {
  Bytes m;
  put16(m, 0x1234);
  put16(m, 0x8180 | rcode);
  put16(m, 1);
  put16(m, static_cast<unsigned>(answers.size()));
  put16(m, 0);
  put16(m, 0);
  Bytes q = name(qname);
  m.insert(m.end(), q.begin(), q.end());
  put16(m, qtype);
  put16(m, 1);
  for (const auto& rr : answers) {
    put16(m, 0xC00C);
    put16(m, rr.type);
    put16(m, 1);
    put16(m, rr.ttl >> 16);
    put16(m, rr.ttl & 0xffff);
    put16(m, static_cast<unsigned>(rr.data.size()));
    m.insert(m.end(), rr.data.begin(), rr.data.end());
  }
  return m;
}

Rr mx(unsigned preference, std::string_view host, std::uint32_t ttl) {
  Bytes data;
  put16(data, preference);
  Bytes n = name(host);
  data.insert(data.end(), n.begin(), n.end());
  return {15, ttl, data};
}

Rr a(const char* text, std::uint32_t ttl) {
  Bytes data(4);
  inet_pton(AF_INET, text, data.data());
  return {1, ttl, data};
}

Rr aaaa(const char* text, std::uint32_t ttl) {
  Bytes data(16);
  inet_pton(AF_INET6, text, data.data());
  return {28, ttl, data};
}

Bytes from_hex(std::string_view hex) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(
        static_cast<unsigned char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

TEST(DnsAnswer, MxRecordsTakeTheLowestTtlOfTheRRset) {
  RawAnswer answer{ARES_SUCCESS,
                   response("example.test", 15,
                            {mx(20, "mx2.example.test", 3600), mx(10, "mx1.example.test", 300)})};
  auto result = parse_mx(answer, "MX example.test");
  ASSERT_TRUE(result.ok()) << result.message;
  ASSERT_EQ(result.records.size(), 2u);
  EXPECT_EQ(result.records[0], (MxRecord{"mx2.example.test", 20, 300}));  // RFC 2181 §5.2
  EXPECT_EQ(result.records[1], (MxRecord{"mx1.example.test", 10, 300}));
}

TEST(DnsAnswer, NullMxFromDnsmasqHasAnEmptyExchange) {
  // dnsmasq 2.90's answer to "nullmx.test MX" with --mx-host=nullmx.test,.,0
  RawAnswer answer{
      ARES_SUCCESS,
      from_hex(
          "000185800001000100000000066e756c6c6d78047465737400000f0001c00c000f000100000e1000030000"
          "00")};
  auto result = parse_mx(answer, "MX nullmx.test");
  ASSERT_TRUE(result.ok()) << result.message;
  ASSERT_EQ(result.records.size(), 1u);
  EXPECT_EQ(result.records[0], (MxRecord{"", 0, 3600}));
  EXPECT_TRUE(is_null_mx(result.records));
}

TEST(DnsAnswer, AddressesWithTheirTtls) {
  auto v4 =
      parse_a({ARES_SUCCESS, response("mx.test", 1, {a("127.0.0.2", 60), a("127.0.0.3", 120)})},
              "A mx.test");
  ASSERT_TRUE(v4.ok()) << v4.message;
  EXPECT_EQ(v4.records,
            (std::vector<AddressRecord>{{"127.0.0.2", 60, false}, {"127.0.0.3", 120, false}}));
  auto v6 = parse_aaaa({ARES_SUCCESS, response("mx.test", 28, {aaaa("2001:db8::25", 30)})},
                       "AAAA mx.test");
  ASSERT_TRUE(v6.ok()) << v6.message;
  EXPECT_EQ(v6.records, (std::vector<AddressRecord>{{"2001:db8::25", 30, true}}));
}

TEST(DnsAnswer, StatusesBecomeErrorKinds) {
  EXPECT_EQ(classify_status(ARES_SUCCESS), DnsError::kNone);
  EXPECT_EQ(classify_status(ARES_ENODATA), DnsError::kNoData);
  EXPECT_EQ(classify_status(ARES_ENOTFOUND), DnsError::kNxDomain);
  EXPECT_EQ(classify_status(ARES_EBADRESP), DnsError::kMalformed);
  for (int s :
       {ARES_ESERVFAIL, ARES_EREFUSED, ARES_ETIMEOUT, ARES_ECONNREFUSED, ARES_EDESTRUCTION}) {
    EXPECT_EQ(classify_status(s), DnsError::kTemporary) << s;
  }
  auto failed = parse_mx({ARES_ETIMEOUT, {}}, "MX slow.test");
  EXPECT_EQ(failed.error, DnsError::kTemporary);
  EXPECT_EQ(failed.message.rfind("MX slow.test: ", 0), 0u);
}

TEST(DnsAnswer, TruncatedOrMismatchedAnswersAreNotRecords) {
  Bytes full = response("example.test", 15, {mx(10, "mx1.example.test", 60)});
  Bytes cut(full.begin(), full.end() - 5);
  EXPECT_EQ(parse_mx({ARES_SUCCESS, cut}, "MX example.test").error, DnsError::kMalformed);
  EXPECT_FALSE(rrset_ttl(cut, 15).has_value());
  // A CNAME-only answer to an MX question: no MX records, so no data.
  Bytes cname = response("alias.test", 15, {{5, 60, name("real.test")}});
  EXPECT_EQ(parse_mx({ARES_SUCCESS, cname}, "MX alias.test").error, DnsError::kNoData);
}

TEST(DnsAnswer, MergedAddressesPreferRecordsThenNxDomainThenTemporary) {
  AddressResult v4, v6;
  v4.records = {{"127.0.0.1", 1, false}};
  v6 = AddressResult::failure(DnsError::kTemporary, "timeout");
  EXPECT_EQ(merge_addresses(v4, v6).records.size(), 1u);
  auto nodata = AddressResult::failure(DnsError::kNoData, "none");
  auto nx = AddressResult::failure(DnsError::kNxDomain, "nx");
  EXPECT_EQ(merge_addresses(nodata, nx).error, DnsError::kNxDomain);
  EXPECT_EQ(merge_addresses(v6, nodata).error, DnsError::kTemporary);
  EXPECT_EQ(merge_addresses(nodata, nodata).error, DnsError::kNoData);
}

TEST(DnsAnswer, ServerListForCares) {
  EXPECT_EQ(servers_csv({"127.0.0.1:5353", "192.0.2.53", "[::1]:5300", "::1"}),
            "127.0.0.1:5353,192.0.2.53:53,[::1]:5300,[::1]:53");
  EXPECT_THROW(servers_csv({"localhost:53"}), std::invalid_argument);
  EXPECT_THROW(servers_csv({"127.0.0.1:99999"}), std::invalid_argument);
}

}  // namespace
}  // namespace tern::dns
