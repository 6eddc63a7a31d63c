// Client addresses as tern counts and logs them: an IPv4-mapped IPv6 address
// (::ffff:192.0.2.1, what a dual-stack listener sees for an IPv4 client) is
// the IPv4 address it maps (RFC 4291 §2.5.5.2).
#pragma once

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <string>

namespace tern::net {

inline asio::ip::address unmapped(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a;
}

// "192.0.2.1:25", "[2001:db8::1]:25" (for logs).
inline std::string endpoint_text(const asio::ip::tcp::endpoint& ep) {
  auto a = unmapped(ep.address());
  std::string out = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return out + ":" + std::to_string(ep.port());
}

}  // namespace tern::net
