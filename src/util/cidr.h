// IP networks in CIDR notation ("192.0.2.0/24", "::1/128") and the match of an
// address against them, for [relay] networks.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern::util {

struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};                          // IPv4 in the first four
  static std::optional<IpAddress> parse(std::string_view text);  // also "::ffff:1.2.3.4"
};

struct Cidr {
  IpAddress network;
  unsigned prefix = 0;
  std::string text;
  static std::optional<Cidr> parse(std::string_view text);  // a plain address is /32 or /128
  bool contains(const IpAddress& addr) const;
};

}  // namespace tern::util
