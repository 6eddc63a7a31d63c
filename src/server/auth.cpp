#include "server/auth.h"

#include <crypt.h>
#include <openssl/crypto.h>

#include <cstring>
#include <memory>

#include "util/base64.h"
#include "util/text.h"

namespace tern::server {

namespace {
// A hash of nothing anyone knows, so that an unknown user takes as long as a known one.
constexpr const char* kDummyHash =
    "$6$terndummysalt$9r1yN4Fm.mrsLPMuBV3KYZbfo9lLyJ5dTQ0B."
    "ALC0mfzUJxyGZKMBR1qO0gQ1V6HzhM9Gg4rJrvY8xJ1Pm1aG0";

std::string_view strip_scheme(std::string_view hash) {
  if (!hash.empty() && hash.front() == '{') {
    auto close = hash.find('}');
    if (close != std::string_view::npos) return hash.substr(close + 1);
  }
  return hash;
}
}  // namespace

bool password_matches(std::string_view password, std::string_view hash) {
  std::string setting(strip_scheme(hash));
  std::string phrase(password);
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_rn(phrase.c_str(), setting.c_str(), data.get(), sizeof(crypt_data));
  OPENSSL_cleanse(phrase.data(), phrase.size());
  if (!out || out[0] == '*') return false;
  std::size_t n = std::strlen(out);
  return n == setting.size() && CRYPTO_memcmp(out, setting.data(), n) == 0;
}

std::string hash_password(std::string_view password, std::string_view scheme) {
  const char* prefix = scheme == "SHA512-CRYPT" ? "$6$"
                       : scheme == "BLF-CRYPT"  ? "$2b$"
                       : scheme == "YESCRYPT"   ? "$y$"
                                                : nullptr;
  if (!prefix) return {};
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn(prefix, 0, nullptr, 0, salt, sizeof salt)) return {};
  std::string phrase(password);
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_rn(phrase.c_str(), salt, data.get(), sizeof(crypt_data));
  OPENSSL_cleanse(phrase.data(), phrase.size());
  if (!out || out[0] == '*') return {};
  return "{" + std::string(scheme) + "}" + out;
}

bool Authenticator::has_users() const {
  for (const auto& m : *config_.mailbox_table())
    if (!m.password.empty()) return true;
  return false;
}

std::optional<std::string> Authenticator::verify(std::string_view user,
                                                 std::string_view password) const {
  auto mailbox = config_.find_mailbox(user);
  if (!mailbox || mailbox->password.empty()) {
    password_matches(password, kDummyHash);
    return std::nullopt;
  }
  if (!password_matches(password, mailbox->password)) return std::nullopt;
  return mailbox->address;
}

std::optional<SaslExchange::Mechanism> SaslExchange::mechanism(std::string_view name) {
  if (util::iequals(name, "PLAIN")) return Mechanism::kPlain;
  if (util::iequals(name, "LOGIN")) return Mechanism::kLogin;
  return std::nullopt;
}

SaslExchange::Result SaslExchange::take_plain(std::string_view b64) {
  auto decoded = util::base64_decode(b64);
  if (!decoded) return {Result::Kind::kBadEncoding, {}};
  // authzid NUL authcid NUL passwd (RFC 4616 §2)
  auto first = decoded->find('\0');
  auto second = first == std::string::npos ? first : decoded->find('\0', first + 1);
  if (second == std::string::npos) return {Result::Kind::kFailed, {}};
  std::string authzid = decoded->substr(0, first);
  user_ = decoded->substr(first + 1, second - first - 1);
  password_ = decoded->substr(second + 1);
  OPENSSL_cleanse(decoded->data(), decoded->size());
  if (!authzid.empty() && authzid != user_) return {Result::Kind::kFailed, {}};
  return {Result::Kind::kCredentials, {}};
}

SaslExchange::Result SaslExchange::start(std::string_view initial) {
  if (mechanism_ == Mechanism::kPlain) {
    if (initial.empty()) {
      step_ = 1;
      return {Result::Kind::kChallenge, ""};
    }
    if (initial == "=") return take_plain("");  // an empty initial response (RFC 4954 §4)
    return take_plain(initial);
  }
  if (initial.empty()) {
    step_ = 1;
    return {Result::Kind::kChallenge, util::base64_encode("Username:")};
  }
  step_ = 1;
  return respond(initial);
}

SaslExchange::Result SaslExchange::respond(std::string_view line) {
  if (line == "*") return {Result::Kind::kCancelled, {}};
  if (mechanism_ == Mechanism::kPlain) return take_plain(line);
  auto decoded = util::base64_decode(line);
  if (!decoded) return {Result::Kind::kBadEncoding, {}};
  if (step_ == 1) {
    user_ = *decoded;
    step_ = 2;
    return {Result::Kind::kChallenge, util::base64_encode("Password:")};
  }
  password_ = *decoded;
  OPENSSL_cleanse(decoded->data(), decoded->size());
  return {Result::Kind::kCredentials, {}};
}

}  // namespace tern::server
