// Sender authentication on the data path (SPEC §2 [[dkim]], [sender_auth]):
// fed the message as it streams into the spool, it removes the header fields
// tern alone may write (Authentication-Results claiming tern's hostname,
// RFC 8601 §5; X-Tern-Dmarc when it verifies), and signs (RFC 6376) or
// collects the DKIM verification of the message. The header section is
// handled in the first part, before anything is stored; the body only streams
// through the hashes, so memory stays bounded whatever the message size.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim_sign.h"
#include "auth/dkim_verify.h"
#include "config/config.h"

namespace tern::server {

// The [[dkim]] signing keys, read at start (a bad key file stops tern with
// the domain and file named) and again on SIGHUP.
class DkimKeyring {
 public:
  struct Entry {
    std::string domain;  // lower case
    std::string selector;
    std::shared_ptr<const auth::DkimPrivateKey> key;
  };
  // Throws std::runtime_error: "[[dkim]] domain fabrikam.test: DKIM key …: why".
  static std::shared_ptr<const DkimKeyring> load(const config::Config& config);
  const Entry* find(std::string_view domain) const;
  bool empty() const { return keys_.empty(); }

 private:
  std::vector<Entry> keys_;
};

// The domain of the single address of the single From field (RFC 5322
// §3.6.2), lower case; "" when there is none, several, or it is unreadable.
std::string from_domain(const std::vector<auth::HeaderField>& fields);

class MessageAuth {
 public:
  enum class Mode { kNone, kSign, kVerify };

  // keys: for kSign; mail_from_domain: the signing domain when the message
  // has no From field.
  MessageAuth(Mode mode, std::string hostname, const DkimKeyring* keys,
              std::string mail_from_domain, std::int64_t now_unix);

  // The content received since the last call, returned as it is to be
  // stored. The first call must hold the whole header section unless it is
  // the last (the first part of a streamed message is 256 KB; a header
  // section longer than that is passed on as it is, without DKIM).
  std::string pass(std::string content, bool last);

  Mode mode() const { return mode_; }
  // The RFC 5322 From domain ("" when none or several).
  const std::string& from() const { return from_domain_; }
  // A From field (or a header section too long to read) without a single
  // readable domain (auth::SenderAuthInput::from_unusable).
  bool from_unusable() const { return from_unusable_; }
  // kSign: the DKIM-Signature field, given the header fields tern adds and
  // signs too (its Message-ID); "" when no [[dkim]] key is for the domain.
  std::string signature(std::string_view added_fields);
  // The domain a signature was made for ("" when none).
  const std::string& signing_domain() const { return signing_domain_; }
  // kVerify: the verifier, fed the whole message (null when not verifying).
  std::unique_ptr<auth::DkimVerifier> take_verifier() { return std::move(verifier_); }

 private:
  // The section without the fields removed; nullopt when none was.
  std::optional<std::string> headers_done(std::string_view section);

  Mode mode_;
  std::string hostname_;
  const DkimKeyring* keys_;
  std::string mail_from_domain_;
  std::int64_t now_;
  bool in_headers_ = true;
  std::string from_domain_;
  bool from_unusable_ = false;
  std::string signing_domain_;
  std::unique_ptr<auth::DkimSigner> signer_;
  std::unique_ptr<auth::DkimVerifier> verifier_;
};

}  // namespace tern::server
