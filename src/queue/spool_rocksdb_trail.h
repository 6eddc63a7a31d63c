// Internal to the RocksDB spool: the keys of the message trail (column family
// "trail", trail.h). Events under 'e' id time seq (one message's events
// together, oldest first); the expiry index under 't' time id; the lookup
// indexes under 'm' Message-ID and 'a' address (lower case, NUL-ended) then id.
// Numbers are big-endian, so keys sort as the numbers do.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "queue/trail.h"

namespace tern::queue::rocksdb_spool {

inline constexpr const char* kTrail = "trail";

inline void put_be(std::string& k, std::uint64_t v, int octets) {
  for (int shift = (octets - 1) * 8; shift >= 0; shift -= 8)
    k += static_cast<char>((v >> shift) & 0xff);
}

inline std::uint64_t get_be(std::string_view k, std::size_t at, int octets) {
  std::uint64_t v = 0;
  for (int i = 0; i < octets && at + i < k.size(); ++i)
    v = (v << 8) | static_cast<unsigned char>(k[at + i]);
  return v;
}

// Times before 1970 do not occur; negative ones are kept as 0.
inline std::uint64_t trail_time_of(std::int64_t ms) {
  return ms < 0 ? 0 : static_cast<std::uint64_t>(ms);
}

inline std::string trail_events_prefix(std::uint64_t id) {
  std::string k(1, 'e');
  put_be(k, id, 8);
  return k;
}

inline std::string trail_event_key(std::uint64_t id, std::int64_t time_ms, std::uint32_t seq) {
  std::string k = trail_events_prefix(id);
  put_be(k, trail_time_of(time_ms), 8);
  put_be(k, seq, 4);
  return k;
}

inline std::string trail_time_key(std::int64_t time_ms, std::uint64_t id) {
  std::string k(1, 't');
  put_be(k, trail_time_of(time_ms), 8);
  put_be(k, id, 8);
  return k;
}

// kind 'm' (Message-ID) or 'a' (address); value already in its key form
// (trail_message_id_key, trail_address_key). A NUL in it would end it early
// and is left out.
inline std::string trail_index_prefix(char kind, std::string_view value) {
  std::string k(1, kind);
  for (char c : value)
    if (c != '\0') k += c;
  k += '\0';
  return k;
}

inline std::string trail_index_key(char kind, std::string_view value, std::uint64_t id) {
  std::string k = trail_index_prefix(kind, value);
  put_be(k, id, 8);
  return k;
}

// The value of an 'e' key: each text field as a 4-octet length and its bytes.
std::string encode_trail_event(const TrailEvent& event);
// nullopt: not an event written by this tern.
std::optional<TrailEvent> decode_trail_event(std::string_view key, std::string_view value);

}  // namespace tern::queue::rocksdb_spool
