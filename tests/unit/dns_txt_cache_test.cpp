// TXT answers (dns/cares_answer.h: character-strings joined, records kept
// apart, an answer over 64 KB refused), the negative-caching TTL of RFC 2308
// §5, and dns::DnsCache/CachingResolver: TTLs honoured on a fake clock,
// negative answers capped, temporary failures not kept, the size bound, and a
// cache shared by threads.
#include <ares.h>
#include <gtest/gtest.h>

#include <thread>

#include "auth_fake_resolver.h"
#include "dns/caching_resolver.h"
#include "dns/cares_answer.h"

namespace tern::dns {
namespace {

using Bytes = std::vector<unsigned char>;

void put16(Bytes& b, unsigned v) {
  b.push_back(static_cast<unsigned char>(v >> 8));
  b.push_back(static_cast<unsigned char>(v));
}
void put32(Bytes& b, std::uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}

Bytes encode_name(std::string_view n) {
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

// A response to "qname qtype": answers, then authority records, all owned by qname.
Bytes response(std::string_view qname, unsigned qtype, const std::vector<Rr>& answers,
               const std::vector<Rr>& authority = {}, unsigned rcode = 0) {
  Bytes m;
  put16(m, 0x1234);
  put16(m, 0x8180 | rcode);
  put16(m, 1);
  put16(m, static_cast<unsigned>(answers.size()));
  put16(m, static_cast<unsigned>(authority.size()));
  put16(m, 0);
  Bytes q = encode_name(qname);
  m.insert(m.end(), q.begin(), q.end());
  put16(m, qtype);
  put16(m, 1);
  for (const auto* section : {&answers, &authority}) {
    for (const auto& rr : *section) {
      put16(m, 0xC00C);
      put16(m, rr.type);
      put16(m, 1);
      put32(m, rr.ttl);
      put16(m, static_cast<unsigned>(rr.data.size()));
      m.insert(m.end(), rr.data.begin(), rr.data.end());
    }
  }
  return m;
}

Rr txt(std::vector<std::string> strings, std::uint32_t ttl) {
  Bytes data;
  for (const auto& s : strings) {
    data.push_back(static_cast<unsigned char>(s.size()));
    data.insert(data.end(), s.begin(), s.end());
  }
  return {16, ttl, data};
}

Rr soa(std::uint32_t ttl, std::uint32_t minimum) {
  Bytes data = encode_name("ns.example.test");
  Bytes rname = encode_name("hostmaster.example.test");
  data.insert(data.end(), rname.begin(), rname.end());
  for (std::uint32_t v : {1u, 3600u, 600u, 86400u, minimum}) put32(data, v);
  return {6, ttl, data};
}

TEST(DnsTxt, StringsOfOneRecordAreJoinedRecordsStayApart) {
  RawAnswer answer{ARES_SUCCESS,
                   response("example.test", 16,
                            {txt({"v=spf1 ip4:192.0.2.0/24", " -all"}, 600),
                             txt({"google-site-verification=x"}, 300), txt({""}, 300)})};
  auto result = parse_txt(answer, "TXT example.test");
  ASSERT_TRUE(result.ok()) << result.message;
  ASSERT_EQ(result.records.size(), 3u);
  EXPECT_EQ(result.records[0].text, "v=spf1 ip4:192.0.2.0/24 -all");
  EXPECT_EQ(result.records[1].text, "google-site-verification=x");
  EXPECT_EQ(result.records[2].text, "");
  EXPECT_EQ(result.records[0].ttl, 300u);  // the RRset's lowest
}

TEST(DnsTxt, AnAnswerOver64KBIsMalformedNotAllocated) {
  std::vector<Rr> records;
  for (int i = 0; i < 400; ++i) records.push_back(txt({std::string(255, 'a')}, 60));  // ~100 KB
  RawAnswer answer{ARES_SUCCESS, response("big.example.test", 16, records)};
  auto result = parse_txt(answer, "TXT big.example.test");
  EXPECT_EQ(result.error, DnsError::kMalformed);
  EXPECT_TRUE(result.records.empty());
  EXPECT_NE(result.message.find("64 KB"), std::string::npos);
}

TEST(DnsTxt, FailuresAndNegativeTtl) {
  RawAnswer nx{ARES_ENOTFOUND, response("gone.example.test", 16, {}, {soa(3600, 120)}, 3)};
  auto gone = parse_txt(nx, "TXT gone.example.test");
  EXPECT_EQ(gone.error, DnsError::kNxDomain);
  EXPECT_EQ(gone.negative_ttl, 120u);  // min(SOA TTL, MINIMUM), RFC 2308 §5
  RawAnswer nodata{ARES_ENODATA, response("a.example.test", 16, {}, {soa(30, 900)})};
  auto empty = parse_txt(nodata, "TXT a.example.test");
  EXPECT_EQ(empty.error, DnsError::kNoData);
  EXPECT_EQ(empty.negative_ttl, 30u);
  EXPECT_EQ(parse_txt({ARES_ETIMEOUT, {}}, "TXT x").error, DnsError::kTemporary);
  EXPECT_EQ(parse_txt({ARES_ENOTFOUND, {}}, "TXT x").negative_ttl, 0u);  // no SOA: the default
}

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  DnsCache::Clock clock() {
    return [this] { return now; };
  }
};

TxtResult txt_result(std::string text, std::uint32_t ttl) {
  TxtResult r;
  r.records.push_back({std::move(text), ttl});
  return r;
}

TEST(DnsCache, AnswersLiveForTheirTtl) {
  FakeClock t;
  DnsCache cache({}, t.clock());
  cache.store("Example.TEST.", txt_result("v=spf1 -all", 300));
  t.now += std::chrono::seconds(100);
  auto hit = cache.find_txt("example.test");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->records.at(0).text, "v=spf1 -all");
  EXPECT_EQ(hit->records.at(0).ttl, 200u);
  EXPECT_FALSE(cache.find_mx("example.test"));  // another type
  t.now += std::chrono::seconds(200);
  EXPECT_FALSE(cache.find_txt("example.test"));
  cache.store("zero.test", txt_result("x", 0));
  EXPECT_FALSE(cache.find_txt("zero.test"));
}

TEST(DnsCache, NegativeAnswersCappedTemporaryNeverKept) {
  FakeClock t;
  DnsCacheLimits limits;
  limits.max_negative_ttl = 600;
  DnsCache cache(limits, t.clock());
  auto nx = TxtResult::failure(DnsError::kNxDomain, "gone");
  nx.negative_ttl = 86400;
  cache.store("gone.test", nx);
  cache.store("default.test", TxtResult::failure(DnsError::kNoData, "none"));
  cache.store("slow.test", TxtResult::failure(DnsError::kTemporary, "timeout"));
  cache.store("bad.test", TxtResult::failure(DnsError::kMalformed, "bad"));
  EXPECT_EQ(cache.size(), 2u);
  t.now += std::chrono::seconds(limits.default_negative_ttl + 1);
  EXPECT_TRUE(cache.find_txt("gone.test"));
  EXPECT_FALSE(cache.find_txt("default.test"));
  t.now += std::chrono::seconds(600);
  EXPECT_FALSE(cache.find_txt("gone.test"));
}

TEST(DnsCache, BoundedLeastRecentlyUsedGoesFirst) {
  DnsCacheLimits limits;
  limits.max_entries = 3;
  DnsCache cache(limits);
  for (const char* n : {"a.test", "b.test", "c.test"}) cache.store(n, txt_result(n, 300));
  EXPECT_TRUE(cache.find_txt("a.test"));  // a is now the most recent
  cache.store("d.test", txt_result("d", 300));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.find_txt("b.test"));
  EXPECT_TRUE(cache.find_txt("a.test"));
  EXPECT_TRUE(cache.find_txt("d.test"));
}

TEST(DnsCache, BoundedInBytes) {
  DnsCacheLimits limits;
  limits.max_bytes = 200'000;
  DnsCache cache(limits);
  for (int i = 0; i < 10; ++i)
    cache.store("big" + std::to_string(i) + ".test", txt_result(std::string(60'000, 'x'), 300));
  EXPECT_LE(cache.bytes(), limits.max_bytes);
  EXPECT_EQ(cache.size(), 3u);  // the three most recent
  EXPECT_TRUE(cache.find_txt("big9.test"));
  EXPECT_FALSE(cache.find_txt("big6.test"));
  cache.store("huge.test", txt_result(std::string(300'000, 'x'), 300));  // larger than it all
  EXPECT_FALSE(cache.find_txt("huge.test"));
  cache.clear();
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(DnsCache, SharedByThreads) {
  DnsCacheLimits limits;
  limits.max_entries = 500;
  DnsCache cache(limits);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 2000; ++i) {
        std::string name = "n" + std::to_string((i * 7 + t) % 800) + ".test";
        if (!cache.find_txt(name)) cache.store(name, txt_result(name, 300));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(cache.size(), 500u);
  EXPECT_GT(cache.size(), 0u);
  EXPECT_GT(cache.bytes(), 0u);
}

TEST(CachingResolver, AsksOnceThenAnswersFromTheCache) {
  test_dns::TableResolver table;
  table.txt("example.test", "v=spf1 -all").host("h.example.test", "192.0.2.1");
  table.temporary = {"slow.test"};
  DnsCache cache;
  CachingResolver resolver(table, cache);
  for (int i = 0; i < 3; ++i) {
    auto t = test_dns::run_task(resolver.txt("example.test"));
    EXPECT_EQ(t.records.at(0).text, "v=spf1 -all");
    auto a = test_dns::run_task(resolver.addresses("h.example.test"));
    EXPECT_EQ(a.records.at(0).address, "192.0.2.1");
    EXPECT_EQ(test_dns::run_task(resolver.txt("nx.test")).error, DnsError::kNxDomain);
    EXPECT_EQ(test_dns::run_task(resolver.txt("slow.test")).error, DnsError::kTemporary);
  }
  std::vector<std::string> expected{"TXT example.test", "A h.example.test", "TXT nx.test",
                                    "TXT slow.test",    "TXT slow.test",    "TXT slow.test"};
  EXPECT_EQ(table.asked, expected);
}

}  // namespace
}  // namespace tern::dns
