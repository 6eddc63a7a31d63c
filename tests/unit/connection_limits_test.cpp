// ConnectionLimits (src/server/connection_limits.h): per-source and
// per-listener counts of live connections, IPv4-mapped IPv6 as IPv4, and no
// memory kept for an address whose connections have all ended.
#include <gtest/gtest.h>

#include "server/connection_limits.h"

namespace tern::server {
namespace {

using Verdict = ConnectionLimits::Verdict;

asio::ip::address ip(const char* text) {
  return asio::ip::make_address(text);
}

std::vector<config::Listener> listeners(std::uint32_t total, std::uint32_t per_source) {
  config::Listener a, b;
  a.max_connections = b.max_connections = total;
  a.max_connections_per_source = b.max_connections_per_source = per_source;
  return {a, b};
}

TEST(ConnectionLimits, PerSourceLimitAndOtherSources) {
  ConnectionLimits limits(listeners(100, 20));
  for (int i = 0; i < 20; ++i) ASSERT_EQ(limits.admit(0, ip("192.0.2.1")), Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(0, ip("192.0.2.1")), Verdict::kSourceFull);
  EXPECT_EQ(limits.from_source(0, ip("192.0.2.1")), 20u);  // a refusal counts nothing
  EXPECT_EQ(limits.admit(0, ip("192.0.2.2")), Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(0, ip("2001:db8::1")), Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(1, ip("192.0.2.1")), Verdict::kAdmitted);  // another listener
  EXPECT_EQ(limits.on_listener(0), 22u);
  limits.release(0, ip("192.0.2.1"));
  EXPECT_EQ(limits.admit(0, ip("192.0.2.1")), Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(0, ip("192.0.2.1")), Verdict::kSourceFull);
}

TEST(ConnectionLimits, MappedIpv6CountsAsIpv4) {
  ConnectionLimits limits(listeners(100, 2));
  EXPECT_EQ(limits.admit(0, ip("192.0.2.7")), Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(0, ip("::ffff:192.0.2.7")), Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(0, ip("::ffff:192.0.2.7")), Verdict::kSourceFull);
  EXPECT_EQ(limits.admit(0, ip("192.0.2.7")), Verdict::kSourceFull);
  EXPECT_EQ(limits.from_source(0, ip("192.0.2.7")), 2u);
  limits.release(0, ip("::ffff:192.0.2.7"));
  EXPECT_EQ(limits.from_source(0, ip("192.0.2.7")), 1u);
}

TEST(ConnectionLimits, ListenerTotal) {
  ConnectionLimits limits(listeners(3, 20));
  EXPECT_EQ(limits.admit(0, ip("192.0.2.1")), Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(0, ip("192.0.2.2")), Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(0, ip("192.0.2.3")), Verdict::kAdmitted);
  EXPECT_EQ(limits.admit(0, ip("192.0.2.4")), Verdict::kListenerFull);
  EXPECT_EQ(limits.sources(0), 3u);  // the refused address left nothing behind
  limits.release(0, ip("192.0.2.2"));
  EXPECT_EQ(limits.admit(0, ip("192.0.2.4")), Verdict::kAdmitted);
}

TEST(ConnectionLimits, EndedSourcesAreForgotten) {
  ConnectionLimits limits(listeners(100000, 20));
  for (int i = 0; i < 1000; ++i) {
    auto a = asio::ip::make_address_v6(
        asio::ip::address_v6::bytes_type{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         std::uint8_t(i >> 8), std::uint8_t(i)});
    ASSERT_EQ(limits.admit(0, a), Verdict::kAdmitted);
    limits.release(0, a);
  }
  EXPECT_EQ(limits.sources(0), 0u);
  EXPECT_EQ(limits.on_listener(0), 0u);
  limits.release(0, ip("192.0.2.9"));  // never admitted: nothing changes
  EXPECT_EQ(limits.on_listener(0), 0u);
}

}  // namespace
}  // namespace tern::server
