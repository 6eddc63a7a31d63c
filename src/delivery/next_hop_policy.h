// Which addresses outbound delivery may connect to (SPEC §2 [delivery]
// private_networks, SPEC §4 Robustness). An address that came from DNS (MX,
// A/AAAA) or from the envelope (an address literal, RFC 5321 §4.1.3) is
// refused when it is special-use — the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890) and the IPv6 space outside global unicast —
// unless [delivery] private_networks lists it. [[route]] next hops and LMTP
// servers are configured by the administrator and never checked here.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/cidr.h"

namespace tern::delivery {

// What kind of special-use address this is ("loopback address (RFC 6890)"),
// or nullopt for a global unicast address. IPv4-mapped IPv6 (::ffff:0:0/96)
// is judged as its IPv4 address, and so is the IPv4 address inside a NAT64
// (64:ff9b::/96, RFC 6052) or 6to4 (2002::/16, RFC 3056) address.
std::optional<std::string> special_use(const util::IpAddress& address);

// The IP address of an address-literal domain, "[192.0.2.1]" → "192.0.2.1",
// "[IPv6:2001:db8::1]" → "2001:db8::1" (the tag in any case); nullopt when the
// literal is neither (a general address literal, or not an address at all).
std::optional<std::string> address_literal_ip(std::string_view domain);

class NextHopPolicy {
 public:
  explicit NextHopPolicy(std::vector<util::Cidr> private_networks = {})
      : private_networks_(std::move(private_networks)) {}

  // Why delivery may not connect to the address, or nullopt when it may:
  // "127.0.0.2 skipped: loopback address (RFC 6890), not in [delivery]
  // private_networks".
  std::optional<std::string> refusal(std::string_view address) const;

 private:
  bool listed(const util::IpAddress& address) const;

  std::vector<util::Cidr> private_networks_;
};

}  // namespace tern::delivery
