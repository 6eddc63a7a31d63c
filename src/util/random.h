// Identifiers that must not repeat: UUIDs for Message-IDs, session ids for logs.
// A per-thread generator seeded from the operating system; not for secrets.
#pragma once

#include <cstdint>
#include <string>

namespace tern::util {

std::uint64_t random_u64();
std::string random_uuid();  // RFC 9562 version 4, lower-case hex

}  // namespace tern::util
