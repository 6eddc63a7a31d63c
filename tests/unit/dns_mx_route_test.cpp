// dns::find_mx_route and its pure steps against a fake Resolver: preference
// order, shuffling among equals with a seeded random source, null MX (RFC
// 7505), the implicit MX of RFC 5321 §5.1, NXDOMAIN and temporary failures.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "dns/mx_route.h"

namespace tern::dns {
namespace {

// Answers from tables; unknown names are NXDOMAIN. Records every question.
class FakeResolver : public Resolver {
 public:
  std::map<std::string, MxResult> mx_answers;
  std::map<std::string, AddressResult> address_answers;
  std::vector<std::string> asked;

  net::awaitable<MxResult> mx(std::string domain) override {
    asked.push_back("MX " + domain);
    auto it = mx_answers.find(domain);
    co_return it != mx_answers.end() ? it->second
                                     : MxResult::failure(DnsError::kNxDomain, "NXDOMAIN");
  }
  net::awaitable<AddressResult> addresses(std::string host) override {
    asked.push_back("A " + host);
    auto it = address_answers.find(host);
    co_return it != address_answers.end() ? it->second
                                          : AddressResult::failure(DnsError::kNxDomain, "NXDOMAIN");
  }

  void host(const std::string& name, const std::string& address) {
    address_answers[name].records.push_back({address, 300, address.find(':') != std::string::npos});
  }
};

// Runs a coroutine to completion on its own event loop.
template <typename T>
T run(net::awaitable<T> task) {
  asio::io_context io;
  std::optional<T> result;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = e;
    result = std::move(value);
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

MxResult mx_records(std::vector<MxRecord> records) {
  MxResult r;
  r.records = std::move(records);
  return r;
}

std::uint64_t always_zero() {
  return 0;
}

std::vector<std::string> names(const MxRoute& route) {
  std::vector<std::string> out;
  for (const auto& h : route.hosts) out.push_back(h.name);
  return out;
}

std::vector<std::string> hosts_of(const std::vector<MxRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.host);
  return out;
}

TEST(DnsMxRoute, MostPreferredFirstWithAddresses) {
  FakeResolver dns;
  dns.mx_answers["example.test"] = mx_records({{"mx2.example.test", 20, 3600},
                                               {"mx1.example.test", 10, 3600},
                                               {"mx3.example.test", 30, 3600}});
  dns.host("mx1.example.test", "127.0.0.2");
  dns.host("mx1.example.test", "::2");
  dns.host("mx2.example.test", "127.0.0.3");
  dns.host("mx3.example.test", "127.0.0.4");
  auto route = run(find_mx_route(dns, "example.test", always_zero));
  EXPECT_EQ(route.kind, RouteKind::kMx);
  EXPECT_TRUE(route.deliverable());
  EXPECT_EQ(names(route),
            (std::vector<std::string>{"mx1.example.test", "mx2.example.test", "mx3.example.test"}));
  ASSERT_EQ(route.hosts[0].addresses.size(), 2u);
  EXPECT_EQ(route.hosts[0].addresses[0].address, "127.0.0.2");
  EXPECT_TRUE(route.hosts[0].addresses[1].v6);
  EXPECT_EQ(route.hosts[0].preference, 10);
  EXPECT_EQ(route.hosts[0].ttl, 3600u);
  EXPECT_EQ(route.failure.code, 0);
}

TEST(DnsMxRoute, ShuffleAmongEqualsFollowsTheRandomSource) {
  std::vector<MxRecord> records{
      {"a", 10, 0}, {"b", 10, 0}, {"c", 10, 0}, {"d", 20, 0}, {"z", 5, 0}};
  // Fisher–Yates with 0 every time: [a b c] → swap(2,0) [c b a] → swap(1,0) [b c a].
  EXPECT_EQ(hosts_of(order_mx(records, always_zero)),
            (std::vector<std::string>{"z", "b", "c", "a", "d"}));
  std::uint64_t next = 0;
  auto counting = [&next] { return next++; };  // 0 % 3, 1 % 2: [c b a] → [c b a]
  EXPECT_EQ(hosts_of(order_mx(records, counting)),
            (std::vector<std::string>{"z", "c", "b", "a", "d"}));
}

TEST(DnsMxRoute, ShuffleReachesEveryOrderButNeverCrossesPreferences) {
  std::vector<MxRecord> records{{"d", 20, 0}, {"a", 10, 0}, {"b", 10, 0}, {"c", 10, 0}};
  std::mt19937_64 seeded(42);
  std::set<std::vector<std::string>> seen;
  for (int i = 0; i < 200; ++i) {
    auto order = hosts_of(order_mx(records, [&] { return seeded(); }));
    ASSERT_EQ(order.back(), "d");
    seen.insert(order);
  }
  EXPECT_EQ(seen.size(), 6u);  // all permutations of a, b, c
  std::mt19937_64 again1(7), again2(7);
  EXPECT_EQ(order_mx(records, [&] { return again1(); }),
            order_mx(records, [&] { return again2(); }));
}

TEST(DnsMxRoute, NullMxIsAPermanentFailureWithoutLookups) {
  for (std::string root : {"", "."}) {
    FakeResolver dns;
    dns.mx_answers["nullmx.test"] = mx_records({{root, 0, 600}});
    auto route = run(find_mx_route(dns, "nullmx.test", always_zero));
    EXPECT_EQ(route.kind, RouteKind::kNullMx);
    EXPECT_TRUE(route.permanent_failure());
    EXPECT_EQ(route.failure.code, 556);
    EXPECT_EQ(route.failure.enhanced, "5.1.10");
    EXPECT_EQ(dns.asked, std::vector<std::string>{"MX nullmx.test"});
    ASSERT_EQ(route.hosts.size(), 1u);
    EXPECT_FALSE(route.hosts[0].usable());
  }
  EXPECT_FALSE(is_null_mx({{"", 10, 0}}));  // RFC 7505 §3: preference 0
  EXPECT_FALSE(is_null_mx({{"", 0, 0}, {"mx.test", 10, 0}}));
}

TEST(DnsMxRoute, RootAmongOtherMxRecordsIsSkipped) {
  FakeResolver dns;
  dns.mx_answers["mixed.test"] = mx_records({{"", 0, 60}, {"mx.mixed.test", 10, 60}});
  dns.host("mx.mixed.test", "127.0.0.9");
  auto route = run(find_mx_route(dns, "mixed.test", always_zero));
  EXPECT_EQ(route.kind, RouteKind::kMx);
  ASSERT_EQ(route.hosts.size(), 2u);
  EXPECT_FALSE(route.hosts[0].usable());
  EXPECT_NE(route.hosts[0].note.find("RFC 7505"), std::string::npos);
  EXPECT_TRUE(route.hosts[1].usable());
}

TEST(DnsMxRoute, NoMxFallsBackToTheDomainsOwnAddress) {
  FakeResolver dns;
  dns.mx_answers["nomx.test"] = MxResult::failure(DnsError::kNoData, "no MX");
  dns.host("nomx.test", "127.0.0.5");
  auto route = run(find_mx_route(dns, "NoMX.Test.", always_zero));
  EXPECT_EQ(route.domain, "nomx.test");
  EXPECT_EQ(route.kind, RouteKind::kImplicitMx);
  ASSERT_EQ(route.hosts.size(), 1u);
  EXPECT_EQ(route.hosts[0].name, "nomx.test");
  EXPECT_EQ(route.hosts[0].preference, 0);
  EXPECT_EQ(route.hosts[0].addresses[0].address, "127.0.0.5");
  EXPECT_EQ(dns.asked, (std::vector<std::string>{"MX nomx.test", "A nomx.test"}));
}

TEST(DnsMxRoute, NoMxAndNoAddressIsPermanent) {
  FakeResolver dns;
  dns.mx_answers["bare.test"] = MxResult::failure(DnsError::kNoData, "no MX");
  dns.address_answers["bare.test"] = AddressResult::failure(DnsError::kNoData, "no A");
  auto route = run(find_mx_route(dns, "bare.test", always_zero));
  EXPECT_EQ(route.kind, RouteKind::kNoAddress);
  EXPECT_EQ(route.failure.code, 550);
  EXPECT_EQ(route.failure.enhanced, "5.4.4");
}

TEST(DnsMxRoute, NxDomainIsPermanent) {
  FakeResolver dns;
  auto route = run(find_mx_route(dns, "nx.test", always_zero));
  EXPECT_EQ(route.kind, RouteKind::kNoDomain);
  EXPECT_TRUE(route.permanent_failure());
  EXPECT_EQ(route.failure.enhanced, "5.1.2");
  EXPECT_TRUE(route.hosts.empty());
}

TEST(DnsMxRoute, ServerFailuresAndBadAnswersAreTemporary) {
  for (DnsError kind : {DnsError::kTemporary, DnsError::kMalformed}) {
    FakeResolver dns;
    dns.mx_answers["flaky.test"] = MxResult::failure(kind, "MX flaky.test: Server failure");
    auto route = run(find_mx_route(dns, "flaky.test", always_zero));
    EXPECT_EQ(route.kind, RouteKind::kTemporary);
    EXPECT_TRUE(route.temporary_failure());
    EXPECT_FALSE(route.permanent_failure());
    EXPECT_EQ(route.failure.code, 451);
    EXPECT_EQ(route.failure.enhanced, "4.4.3");
    EXPECT_NE(route.failure.lines.front().find("Server failure"), std::string::npos);
  }
}

TEST(DnsMxRoute, HostWithoutAddressIsSkippedAndNoted) {
  FakeResolver dns;
  dns.mx_answers["example.test"] =
      mx_records({{"gone.example.test", 10, 60}, {"mx.example.test", 20, 60}});
  dns.address_answers["gone.example.test"] = AddressResult::failure(DnsError::kNoData, "no A");
  dns.host("mx.example.test", "127.0.0.6");
  auto route = run(find_mx_route(dns, "example.test", always_zero));
  EXPECT_EQ(route.kind, RouteKind::kMx);
  ASSERT_EQ(route.hosts.size(), 2u);
  EXPECT_FALSE(route.hosts[0].usable());
  EXPECT_EQ(route.hosts[0].note, "no A/AAAA records");
  EXPECT_TRUE(route.hosts[1].usable());
}

TEST(DnsMxRoute, NoUsableHostIsTemporaryIfAnyLookupWas) {
  FakeResolver dns;
  dns.mx_answers["example.test"] =
      mx_records({{"a.example.test", 10, 60}, {"b.example.test", 20, 60}});
  dns.address_answers["a.example.test"] = AddressResult::failure(DnsError::kNoData, "no A");
  auto permanent = run(find_mx_route(dns, "example.test", always_zero));  // b: NXDOMAIN
  EXPECT_EQ(permanent.kind, RouteKind::kNoAddress);
  EXPECT_EQ(permanent.failure.enhanced, "5.4.4");
  dns.address_answers["b.example.test"] = AddressResult::failure(DnsError::kTemporary, "timeout");
  auto temporary = run(find_mx_route(dns, "example.test", always_zero));
  EXPECT_EQ(temporary.kind, RouteKind::kTemporary);
  EXPECT_EQ(temporary.hosts.size(), 2u);
}

TEST(DnsMxRoute, DuplicateHostsAreLookedUpOnceAndHostsAreCapped) {
  FakeResolver dns;
  std::vector<MxRecord> records{{"mx.example.test", 10, 60}, {"MX.example.test.", 20, 60}};
  for (int i = 0; i < 30; ++i)
    records.push_back({"h" + std::to_string(i) + ".example.test", 30, 60});
  dns.mx_answers["example.test"] = mx_records(records);
  dns.host("mx.example.test", "127.0.0.7");
  auto route = run(find_mx_route(dns, "example.test", always_zero));
  EXPECT_EQ(route.kind, RouteKind::kMx);
  EXPECT_EQ(route.hosts.size(), 32u);
  EXPECT_EQ(route.hosts[1].name, "mx.example.test");
  EXPECT_FALSE(route.hosts[1].usable());
  EXPECT_EQ(dns.asked.size(), 1 + kMaxMxHosts);  // the MX query, then 20 hosts
  EXPECT_NE(route.hosts.back().note.find("not looked up"), std::string::npos);
}

}  // namespace
}  // namespace tern::dns
