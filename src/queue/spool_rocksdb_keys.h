// Internal to the RocksDB spool: the column family names and the key encoding.
// Contract: keys are the big-endian InternalId (8 octets), so iteration order is
// id order; a part's key is its message's id followed by its seq (4 octets).
#pragma once

#include <rocksdb/slice.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace tern::queue::rocksdb_spool {

inline constexpr const char* kEnvelopes = "envelopes";
inline constexpr const char* kContents = "contents";
inline constexpr const char* kParts = "parts";  // streamed parts of large messages
inline constexpr const char* kNextIdKey = "next_id";
// In the default family: "pickup/" + the name of a maildrop file whose
// message was committed (SpoolChange::picked_up), until it is forgotten.
inline constexpr std::string_view kPickupPrefix = "pickup/";
inline std::string pickup_key(std::string_view name) {
  return std::string(kPickupPrefix) + std::string(name);
}

inline std::string id_key(std::uint64_t id) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i) {
    k[i] = static_cast<char>(id & 0xff);
    id >>= 8;
  }
  return k;
}

// Parts sort after their message's id: id (8 octets) + seq (4), big-endian.
inline std::string part_key(std::uint64_t id, std::uint32_t seq) {
  std::string k = id_key(id);
  for (int shift = 24; shift >= 0; shift -= 8) k += static_cast<char>((seq >> shift) & 0xff);
  return k;
}

inline std::uint64_t key_id(const rocksdb::Slice& k) {
  std::uint64_t id = 0;
  for (size_t i = 0; i < k.size() && i < 8; ++i) id = (id << 8) | static_cast<unsigned char>(k[i]);
  return id;
}

}  // namespace tern::queue::rocksdb_spool
