// SMTP AUTH (RFC 4954) without I/O: the SASL mechanisms PLAIN (RFC 4616) and
// LOGIN, and the check of a password against the crypt(3) hash of a [[mailbox]]
// (SHA512-CRYPT, bcrypt, yescrypt through libxcrypt, as Dovecot stores them).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace tern::server {

class Authenticator {
 public:
  explicit Authenticator(const config::Config& config) : config_(config) {}
  // The mailbox address the user logs in as, when the password matches. Slow
  // on purpose (the hash's cost): call it off the event loop. An unknown user
  // costs the same time as a wrong password.
  std::optional<std::string> verify(std::string_view user, std::string_view password) const;
  bool has_users() const;

 private:
  const config::Config& config_;
};

// Checks a password against "{SCHEME}$id$salt$hash" or "$id$salt$hash".
bool password_matches(std::string_view password, std::string_view hash);
// A new hash of the password with a random salt, "{SCHEME}$id$…" as Dovecot
// writes it. scheme: "SHA512-CRYPT" ($6$), "BLF-CRYPT" (bcrypt, $2b$) or
// "YESCRYPT" ($y$). Empty when the scheme is unknown.
std::string hash_password(std::string_view password, std::string_view scheme = "SHA512-CRYPT");

// One AUTH exchange. start() takes the AUTH argument; each client line goes to
// respond(). The result is either a challenge to send (334), a failure reply,
// or credentials to verify.
class SaslExchange {
 public:
  enum class Mechanism { kPlain, kLogin };
  struct Result {
    enum class Kind { kChallenge, kCredentials, kCancelled, kBadEncoding, kFailed } kind;
    std::string challenge;  // base64, for kChallenge
  };

  explicit SaslExchange(Mechanism m) : mechanism_(m) {}
  Result start(std::string_view initial_response);  // "" when none was given
  Result respond(std::string_view line);
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }

  static std::optional<Mechanism> mechanism(std::string_view name);

 private:
  Result take_plain(std::string_view b64);
  Mechanism mechanism_;
  int step_ = 0;
  std::string user_;
  std::string password_;
};

}  // namespace tern::server
