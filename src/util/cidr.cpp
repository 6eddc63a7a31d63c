#include "util/cidr.h"

#include <arpa/inet.h>

#include <cstring>

#include "util/text.h"

namespace tern::util {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a.bytes.data(), kMapped, 12) == 0) {  // IPv4-mapped: compare as IPv4
      std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
      std::memset(a.bytes.data() + 4, 0, 12);
      return a;
    }
    a.v6 = true;
    return a;
  }
  return std::nullopt;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  Cidr c;
  c.text = std::string(text);
  size_t slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  c.network = *addr;
  unsigned max = addr->v6 ? 128 : 32;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    auto p = parse_uint(text.substr(slash + 1));
    if (!p || *p > max) return std::nullopt;
    c.prefix = static_cast<unsigned>(*p);
  }
  return c;
}

bool Cidr::contains(const IpAddress& addr) const {
  if (addr.v6 != network.v6) return false;
  unsigned full = prefix / 8, bits = prefix % 8;
  if (std::memcmp(addr.bytes.data(), network.bytes.data(), full) != 0) return false;
  if (bits == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - bits));
  return (addr.bytes[full] & mask) == (network.bytes[full] & mask);
}

}  // namespace tern::util
