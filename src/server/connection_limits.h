// Admission of inbound connections (SPEC §2 [[listener]] max_connections and
// max_connections_per_source, SPEC §3's 421 4.3.2): live connections counted
// per listener and per client IP on it, an IPv4-mapped IPv6 address as its
// IPv4 address. Not locked itself: ServerContext calls it under its lock.
#pragma once

#include <array>
#include <asio/ip/address.hpp>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace tern::server {

class ConnectionLimits {
 public:
  enum class Verdict { kAdmitted, kListenerFull, kSourceFull };

  explicit ConnectionLimits(const std::vector<config::Listener>& listeners);

  // Counts one more connection from source on listener, or says which limit
  // it would pass (and counts nothing).
  Verdict admit(std::size_t listener, const asio::ip::address& source);
  // An admitted connection has ended.
  void release(std::size_t listener, const asio::ip::address& source);

  std::uint32_t on_listener(std::size_t listener) const { return listeners_.at(listener).total; }
  std::uint32_t from_source(std::size_t listener, const asio::ip::address& source) const;
  // Client addresses with a live connection: an address leaves when its last
  // connection ends, so memory follows the live connections.
  std::size_t sources(std::size_t listener) const {
    return listeners_.at(listener).by_source.size();
  }

 private:
  using Key = std::array<unsigned char, 16>;  // IPv6 bytes; IPv4 as IPv4-mapped
  struct KeyHash {
    std::uint64_t seed;  // random: client addresses are chosen by clients
    std::size_t operator()(const Key& k) const;
  };
  struct PerListener {
    std::uint32_t max_total, max_per_source;
    std::uint32_t total = 0;
    std::unordered_map<Key, std::uint32_t, KeyHash> by_source;
  };
  static Key key(const asio::ip::address& source);

  std::vector<PerListener> listeners_;
};

}  // namespace tern::server
