// delivery::NextHopPolicy as tables: which addresses are special-use (RFC
// 6890 and the IANA special-purpose registries), what [delivery]
// private_networks lets through, and how address literals are read.
#include <gtest/gtest.h>

#include "delivery/next_hop_policy.h"

namespace tern::delivery {
namespace {

std::vector<util::Cidr> networks(std::initializer_list<const char*> list) {
  std::vector<util::Cidr> out;
  for (const char* n : list) out.push_back(*util::Cidr::parse(n));
  return out;
}

TEST(NextHopPolicy, SpecialUseTable) {
  struct Case {
    const char* address;
    const char* kind;  // nullptr: global unicast, allowed
  } cases[] = {
      {"0.0.0.0", "\"this network\" address"},
      {"0.1.2.3", "\"this network\" address"},
      {"10.0.0.5", "private-use address"},
      {"100.64.0.1", "shared (carrier-grade NAT) address"},
      {"100.127.255.255", "shared (carrier-grade NAT) address"},
      {"100.128.0.1", nullptr},
      {"127.0.0.1", "loopback address"},
      {"127.0.0.2", "loopback address"},
      {"169.254.169.254", "link-local address"},  // cloud metadata services
      {"172.16.0.1", "private-use address"},
      {"172.31.255.255", "private-use address"},
      {"172.32.0.1", nullptr},
      {"192.0.0.8", "IETF protocol assignment address"},
      {"192.0.2.1", "documentation address"},
      {"192.88.99.1", "6to4 relay anycast address"},
      {"192.168.1.1", "private-use address"},
      {"198.18.0.1", "benchmarking address"},
      {"198.19.255.255", "benchmarking address"},
      {"198.20.0.1", nullptr},
      {"198.51.100.7", "documentation address"},
      {"203.0.113.9", "documentation address"},
      {"224.0.0.1", "multicast address"},
      {"239.255.255.250", "multicast address"},
      {"240.0.0.1", "reserved address"},
      {"255.255.255.255", "limited broadcast address"},
      {"8.8.8.8", nullptr},
      {"93.184.216.34", nullptr},
      {"::", "unspecified address"},
      {"::1", "loopback address"},
      {"::ffff:127.0.0.1", "loopback address"},  // IPv4-mapped: judged as IPv4
      {"::ffff:10.1.2.3", "private-use address"},
      {"::ffff:8.8.8.8", nullptr},
      {"::127.0.0.1", "IPv4-compatible address (deprecated)"},
      {"64:ff9b::7f00:1", "loopback address (RFC 6890) inside a NAT64"},
      {"64:ff9b::808:808", nullptr},
      {"64:ff9b:1::1", "local-use NAT64 address"},
      {"100::1", "discard-only address"},
      {"2001::1", "IETF protocol assignment address"},  // Teredo
      {"2001:db8::25", "documentation address"},
      {"2002:c0a8:101::1", "private-use address (RFC 6890) inside a 6to4"},
      {"2002:808:808::1", nullptr},
      {"3fff::1", "documentation address"},
      {"fc00::1", "unique-local address"},
      {"fd12:3456::1", "unique-local address"},
      {"fe80::1", "link-local address"},
      {"fec0::1", "site-local address (deprecated)"},
      {"ff02::1", "multicast address"},
      {"4000::1", "reserved address outside global unicast"},
      {"2a00:1450:4001::1b", nullptr},
      {"2606:4700::1111", nullptr},
  };
  for (const auto& c : cases) {
    auto address = util::IpAddress::parse(c.address);
    ASSERT_TRUE(address) << c.address;
    auto kind = special_use(*address);
    if (c.kind == nullptr) {
      EXPECT_FALSE(kind) << c.address << " is " << kind.value_or("");
    } else {
      ASSERT_TRUE(kind) << c.address;
      EXPECT_EQ(kind->rfind(c.kind, 0), 0u) << c.address << ": " << *kind;
      EXPECT_NE(kind->find("(RFC 6890)"), std::string::npos) << *kind;
    }
  }
}

TEST(NextHopPolicy, RefusalNamesTheAddressAndTheKey) {
  NextHopPolicy none;
  EXPECT_EQ(none.refusal("127.0.0.2").value_or(""),
            "127.0.0.2 skipped: loopback address (RFC 6890), not in [delivery] private_networks");
  EXPECT_EQ(none.refusal("10.0.0.5").value_or(""),
            "10.0.0.5 skipped: private-use address (RFC 6890), not in [delivery] private_networks");
  EXPECT_FALSE(none.refusal("192.0.1.1"));
  EXPECT_EQ(none.refusal("mx.example.test").value_or(""),
            "mx.example.test skipped: not an IP address");
  EXPECT_EQ(none.refusal("fe80::1%eth0").value_or(""), "fe80::1%eth0 skipped: not an IP address");
}

TEST(NextHopPolicy, PrivateNetworksLetThrough) {
  NextHopPolicy policy(networks({"127.0.0.0/8", "::1/128", "10.1.0.0/16"}));
  EXPECT_FALSE(policy.refusal("127.0.0.2"));
  EXPECT_FALSE(policy.refusal("::1"));
  EXPECT_FALSE(policy.refusal("::ffff:127.0.0.9"));
  EXPECT_FALSE(policy.refusal("64:ff9b::7f00:1"));  // the IPv4 inside is listed
  EXPECT_FALSE(policy.refusal("10.1.2.3"));
  EXPECT_TRUE(policy.refusal("10.2.0.1"));
  EXPECT_TRUE(policy.refusal("192.168.0.1"));
  EXPECT_TRUE(policy.refusal("fe80::1"));
  EXPECT_FALSE(policy.refusal("8.8.8.8"));
}

TEST(NextHopPolicy, AddressLiterals) {
  struct Case {
    const char* domain;
    const char* ip;  // nullptr: not an IP address literal
  } cases[] = {
      {"[192.0.2.1]", "192.0.2.1"},
      {"[IPv6:2001:db8::1]", "2001:db8::1"},
      {"[ipv6:::1]", "::1"},
      {"[IPV6:::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
      {"[::1]", nullptr},            // IPv6 needs its tag (RFC 5321 §4.1.3)
      {"[IPv6:10.0.0.1]", nullptr},  // and IPv4 has none
      {"[010.0.0.1]", nullptr},
      {"[10.0.0]", nullptr},
      {"[x-tag:whatever]", nullptr},
      {"[IPv6:fe80::1%eth0]", nullptr},
      {"[]", nullptr},
      {"example.test", nullptr},
      {"[192.0.2.1", nullptr},
  };
  for (const auto& c : cases) {
    auto ip = address_literal_ip(c.domain);
    if (c.ip == nullptr)
      EXPECT_FALSE(ip) << c.domain << " read as " << ip.value_or("");
    else
      EXPECT_EQ(ip.value_or("(none)"), c.ip) << c.domain;
  }
}

}  // namespace
}  // namespace tern::delivery
