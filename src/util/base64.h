// Base64 (RFC 4648 §4) for SASL exchanges, through OpenSSL's codec. decode()
// is strict: only the alphabet, correct padding, no white space.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tern::util {

std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace tern::util
