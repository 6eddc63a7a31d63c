// Identifiers that must not repeat: UUIDs for Message-IDs, session ids for logs.
// A per-thread generator seeded from the operating system; not for secrets,
// which come from random_secret_hex (OpenSSL's CSPRNG).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tern::util {

std::uint64_t random_u64();
std::string random_uuid();  // RFC 9562 version 4, lower-case hex
// bytes from RAND_bytes as lower-case hex (2 × bytes characters), for secrets
// such as the admin token; throws std::runtime_error when OpenSSL cannot.
std::string random_secret_hex(std::size_t bytes);

}  // namespace tern::util
