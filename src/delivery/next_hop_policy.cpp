// The special-use address table and the private_networks exception; see
// next_hop_policy.h. The ranges follow the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890 §2.2.2, §2.2.3 and their updates); ranges the
// registries mark globally reachable (AS112, AMT, NAT64's well-known prefix)
// are not refused, but the IPv4 address inside NAT64 and 6to4 is judged.
#include "delivery/next_hop_policy.h"

#include <algorithm>
#include <cstring>

#include "util/text.h"

namespace tern::delivery {

namespace {

struct Range {
  const char* network;
  const char* kind;
};

// More specific ranges first: the first match names the address.
constexpr Range kSpecialUse[] = {
    {"0.0.0.0/8", "\"this network\" address"},                // RFC 791, RFC 1122 §3.2.1.3
    {"10.0.0.0/8", "private-use address"},                    // RFC 1918
    {"100.64.0.0/10", "shared (carrier-grade NAT) address"},  // RFC 6598
    {"127.0.0.0/8", "loopback address"},                      // RFC 1122 §3.2.1.3
    {"169.254.0.0/16", "link-local address"},                 // RFC 3927
    {"172.16.0.0/12", "private-use address"},                 // RFC 1918
    {"192.0.0.0/24", "IETF protocol assignment address"},     // RFC 6890 §2.1
    {"192.0.2.0/24", "documentation address"},                // RFC 5737
    {"192.88.99.0/24", "6to4 relay anycast address"},         // RFC 7526
    {"192.168.0.0/16", "private-use address"},                // RFC 1918
    {"198.18.0.0/15", "benchmarking address"},                // RFC 2544
    {"198.51.100.0/24", "documentation address"},             // RFC 5737
    {"203.0.113.0/24", "documentation address"},              // RFC 5737
    {"224.0.0.0/4", "multicast address"},                     // RFC 5771
    {"255.255.255.255/32", "limited broadcast address"},      // RFC 919, RFC 8190
    {"240.0.0.0/4", "reserved address"},                      // RFC 1112 §4
    {"::/128", "unspecified address"},                        // RFC 4291 §2.5.2
    {"::1/128", "loopback address"},                          // RFC 4291 §2.5.3
    {"::/96", "IPv4-compatible address (deprecated)"},        // RFC 4291 §2.5.5.1
    {"64:ff9b:1::/48", "local-use NAT64 address"},            // RFC 8215
    {"100::/64", "discard-only address"},                     // RFC 6666
    {"2001::/23", "IETF protocol assignment address"},        // RFC 2928
    {"2001:db8::/32", "documentation address"},               // RFC 3849
    {"3fff::/20", "documentation address"},                   // RFC 9637
    {"5f00::/16", "segment routing (SRv6) address"},          // RFC 9602
    {"fc00::/7", "unique-local address"},                     // RFC 4193
    {"fe80::/10", "link-local address"},                      // RFC 4291 §2.5.6
    {"fec0::/10", "site-local address (deprecated)"},         // RFC 3879
    {"ff00::/8", "multicast address"},                        // RFC 4291 §2.7
};

struct ParsedRange {
  util::Cidr network;
  std::string kind;
};

const std::vector<ParsedRange>& special_ranges() {
  static const std::vector<ParsedRange> ranges = [] {
    std::vector<ParsedRange> out;
    for (const auto& r : kSpecialUse) out.push_back({*util::Cidr::parse(r.network), r.kind});
    return out;
  }();
  return ranges;
}

// RFC 6052 §2.1 NAT64, RFC 3056 §2 6to4, RFC 4291 §2.4 global unicast.
const util::Cidr& nat64() {
  static const util::Cidr c = *util::Cidr::parse("64:ff9b::/96");
  return c;
}
const util::Cidr& six_to_four() {
  static const util::Cidr c = *util::Cidr::parse("2002::/16");
  return c;
}
const util::Cidr& global_unicast() {
  static const util::Cidr c = *util::Cidr::parse("2000::/3");
  return c;
}

util::IpAddress v4(const std::uint8_t* bytes) {
  util::IpAddress a;
  std::memcpy(a.bytes.data(), bytes, 4);
  return a;
}

// The IPv4 address an IPv6 address carries by construction (NAT64, 6to4).
std::optional<std::pair<util::IpAddress, const char*>> embedded_v4(const util::IpAddress& a) {
  if (!a.v6) return std::nullopt;
  if (nat64().contains(a)) return std::make_pair(v4(a.bytes.data() + 12), "NAT64");
  if (six_to_four().contains(a)) return std::make_pair(v4(a.bytes.data() + 2), "6to4");
  return std::nullopt;
}

std::optional<std::string> listed_kind(const util::IpAddress& a) {
  for (const auto& r : special_ranges())
    if (r.network.contains(a)) return r.kind;
  return std::nullopt;
}

}  // namespace

std::optional<std::string> special_use(const util::IpAddress& address) {
  if (auto kind = listed_kind(address)) return *kind + " (RFC 6890)";
  if (auto inner = embedded_v4(address)) {
    if (auto kind = listed_kind(inner->first))
      return *kind + " (RFC 6890) inside a " + inner->second + " address";
    return std::nullopt;
  }
  if (address.v6 && !global_unicast().contains(address))
    return "reserved address outside global unicast 2000::/3 (RFC 6890)";
  return std::nullopt;
}

std::optional<std::string> address_literal_ip(std::string_view domain) {
  if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']') return std::nullopt;
  std::string_view inner = domain.substr(1, domain.size() - 2);
  bool v6 = util::istarts_with(inner, "IPv6:");
  if (v6) inner.remove_prefix(5);
  // inet_pton, strictly: no zone index, no leading zeros, no names.
  auto parsed = util::IpAddress::parse(inner);
  if (!parsed) return std::nullopt;
  bool text_is_v6 = inner.find(':') != std::string_view::npos;
  if (text_is_v6 != v6) return std::nullopt;  // "[::1]" or "[IPv6:1.2.3.4]" (RFC 5321 §4.1.3)
  return std::string(inner);
}

bool NextHopPolicy::listed(const util::IpAddress& address) const {
  return std::any_of(private_networks_.begin(), private_networks_.end(),
                     [&](const util::Cidr& c) { return c.contains(address); });
}

std::optional<std::string> NextHopPolicy::refusal(std::string_view address) const {
  std::string text = util::printable(address, 64);
  auto parsed = util::IpAddress::parse(address);
  if (!parsed) return text + " skipped: not an IP address";
  auto kind = special_use(*parsed);
  if (!kind || listed(*parsed)) return std::nullopt;
  if (auto inner = embedded_v4(*parsed); inner && listed(inner->first)) return std::nullopt;
  return text + " skipped: " + *kind + ", not in [delivery] private_networks";
}

}  // namespace tern::delivery
