// Counting live inbound connections per listener and per client IP
// (connection_limits.h).
#include "server/connection_limits.h"

#include <cstring>

#include "util/random.h"

namespace tern::server {

namespace {
// splitmix64's finaliser: every bit of the input reaches every bit of the hash.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

std::size_t ConnectionLimits::KeyHash::operator()(const Key& k) const {
  std::uint64_t hi = 0, lo = 0;
  std::memcpy(&hi, k.data(), 8);
  std::memcpy(&lo, k.data() + 8, 8);
  return static_cast<std::size_t>(mix(mix(hi ^ seed) ^ lo));
}

ConnectionLimits::Key ConnectionLimits::key(const asio::ip::address& source) {
  if (source.is_v4())
    return asio::ip::make_address_v6(asio::ip::v4_mapped, source.to_v4()).to_bytes();
  return source.to_v6().to_bytes();  // an IPv4-mapped address is already the IPv4 key
}

ConnectionLimits::ConnectionLimits(const std::vector<config::Listener>& listeners) {
  std::uint64_t seed = util::random_u64();
  for (const auto& l : listeners) {
    listeners_.push_back(
        PerListener{l.max_connections, l.max_connections_per_source, 0,
                    std::unordered_map<Key, std::uint32_t, KeyHash>(0, KeyHash{seed})});
  }
}

ConnectionLimits::Verdict ConnectionLimits::admit(std::size_t listener,
                                                  const asio::ip::address& source) {
  auto& l = listeners_.at(listener);
  if (l.total >= l.max_total) return Verdict::kListenerFull;
  auto [it, added] = l.by_source.try_emplace(key(source), 0);
  if (it->second >= l.max_per_source) return Verdict::kSourceFull;
  ++it->second;
  ++l.total;
  return Verdict::kAdmitted;
}

void ConnectionLimits::release(std::size_t listener, const asio::ip::address& source) {
  auto& l = listeners_.at(listener);
  auto it = l.by_source.find(key(source));
  if (it == l.by_source.end()) return;
  if (--it->second == 0) l.by_source.erase(it);
  if (l.total > 0) --l.total;
}

std::uint32_t ConnectionLimits::from_source(std::size_t listener,
                                            const asio::ip::address& source) const {
  const auto& l = listeners_.at(listener);
  auto it = l.by_source.find(key(source));
  return it == l.by_source.end() ? 0 : it->second;
}

}  // namespace tern::server
