// STARTTLS (RFC 3207) and AUTH (RFC 4954) for the session. The TLS handshake
// and the password check happen outside (Action::kStartTls, kVerifyCredentials);
// the session only decides what is allowed and what to answer.
#include "server/auth.h"
#include "server/session.h"
#include "smtp/replies.h"

namespace tern::server {

using smtp::Reply;
namespace replies = smtp::replies;

namespace {
// After this many failed AUTH attempts the connection is closed (421 4.7.0).
constexpr std::uint32_t kMaxAuthFailures = 3;
}  // namespace

bool Session::auth_offered() const {
  return env_.authenticator && env_.listener->auth != config::AuthMode::kNone &&
         (env_.tls_active || env_.listener->allow_plaintext_auth);
}

Step Session::cmd_starttls(std::string_view arg) {
  if (!env_.tls_available) return answer(replies::kNotImplemented);
  if (env_.tls_active) return answer(replies::kBadSequence);
  if (!arg.empty()) return answer(replies::kSyntaxError);
  return answer(replies::kTlsReady, Action::kStartTls);
}

void Session::tls_established(std::string description) {
  // RFC 3207 §4.2: discard all knowledge obtained from the client before TLS.
  env_.tls_active = true;
  tls_description_ = std::move(description);
  helo_.clear();
  extended_ = false;
  auth_user_.clear();
  sasl_.reset();
  mode_ = Mode::kCommand;
  reset_transaction();
}

Step Session::cmd_auth(std::string_view arg) {
  if (!auth_offered()) {
    if (env_.authenticator && env_.listener->auth != config::AuthMode::kNone && !env_.tls_active)
      return answer(replies::kMustStartTls);
    return answer(replies::kNotImplemented);
  }
  if (helo_.empty() || tx_.active) return answer(replies::kBadSequence);
  if (!auth_user_.empty()) return answer(replies::kAuthAlready);
  auto space = arg.find(' ');
  auto mechanism = SaslExchange::mechanism(arg.substr(0, space));
  if (!mechanism) return answer(replies::kAuthUnknownMechanism);
  std::string_view initial =
      space == std::string_view::npos ? std::string_view() : arg.substr(space + 1);
  sasl_.emplace(*mechanism);
  auto result = sasl_->start(initial);
  if (result.kind == SaslExchange::Result::Kind::kChallenge) {
    mode_ = Mode::kAuth;
    return {Reply(334, "", result.challenge), Action::kContinue};
  }
  if (result.kind == SaslExchange::Result::Kind::kCredentials)
    return {std::nullopt, Action::kVerifyCredentials};
  sasl_.reset();
  if (result.kind == SaslExchange::Result::Kind::kBadEncoding)
    return answer(replies::kAuthBadBase64);
  return credentials_verified(std::nullopt);
}

Step Session::auth_response(std::string_view line) {
  if (env_.observer) env_.observer->received("****");
  auto result = sasl_->respond(line);
  switch (result.kind) {
    case SaslExchange::Result::Kind::kChallenge:
      return {Reply(334, "", result.challenge), Action::kContinue};
    case SaslExchange::Result::Kind::kCredentials:
      mode_ = Mode::kCommand;
      return {std::nullopt, Action::kVerifyCredentials};
    case SaslExchange::Result::Kind::kCancelled:
      mode_ = Mode::kCommand;
      sasl_.reset();
      return answer(replies::kAuthCancelled);
    case SaslExchange::Result::Kind::kBadEncoding:
      mode_ = Mode::kCommand;
      sasl_.reset();
      return answer(replies::kAuthBadBase64);
    case SaslExchange::Result::Kind::kFailed:
      break;
  }
  mode_ = Mode::kCommand;
  sasl_.reset();
  return credentials_verified(std::nullopt);
}

std::optional<std::string> Session::verify_credentials() const {
  if (!sasl_ || !env_.authenticator) return std::nullopt;
  return env_.authenticator->verify(sasl_->user(), sasl_->password());
}

Step Session::credentials_verified(std::optional<std::string> user) {
  sasl_.reset();
  if (user) {
    auth_user_ = *user;
    if (env_.observer) env_.observer->info("authenticated as " + auth_user_);
    return answer(replies::kAuthOk);
  }
  if (++auth_failures_ >= kMaxAuthFailures) {
    return {replies::kTooManyErrors, Action::kClose};
  }
  return answer(replies::kAuthFailed);
}

}  // namespace tern::server
