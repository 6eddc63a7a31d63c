// The admin listener's bearer token (SPEC §2 [admin] token_file): read from
// its file, or created there (0600, 32 random bytes in hex) when missing.
// tern serve reads it before it drops root; a file it creates as root is
// handed to the configured user. Compared in constant time (CRYPTO_memcmp).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace tern::admin {

// The token in file (surrounding white space removed), creating the file and
// its missing folders (0700) first; owner: the account to give what it
// creates to (tern serve started as root), or nullopt. Throws
// std::runtime_error for a file that is not a regular file, is readable by
// group or others, or holds fewer than 16 characters.
struct Owner {
  unsigned uid;
  unsigned gid;
};
std::string load_or_create_token(const std::filesystem::path& file,
                                 std::optional<Owner> owner = std::nullopt);

// Whether an Authorization header value is "Bearer <token>", in time that
// does not depend on where the token differs.
bool bearer_matches(std::string_view authorization, const std::string& token);

}  // namespace tern::admin
