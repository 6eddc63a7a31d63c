// DKIM signing (RFC 6376 §5, RFC 8463): relaxed/relaxed canonicalisation,
// rsa-sha256 or ed25519-sha256 chosen by the key's type, the header fields of
// §5.4.1 that are present (each instance signed, From once more than present
// so none can be added), t= the signing time. Incremental: the header section,
// then the body in chunks of any size, then the DKIM-Signature field. All
// cryptography is OpenSSL 3's EVP (EVP_DigestSign, SHA-256).
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim_canon.h"

namespace tern::auth {

enum class DkimAlgorithm { kRsaSha256, kEd25519Sha256 };

// A private signing key: RSA (at least 1024 bits, RFC 8301 §3.2) or Ed25519.
class DkimPrivateKey {
 public:
  // Reads a PEM private key; throws std::runtime_error naming the file and
  // what is wrong with it (unreadable, not a key, wrong type, too small).
  static std::shared_ptr<const DkimPrivateKey> load(const std::filesystem::path& file);
  static std::shared_ptr<const DkimPrivateKey> from_pem(std::string_view pem);
  // A new key: 2048-bit RSA or Ed25519 (tern dkim keygen).
  static std::shared_ptr<const DkimPrivateKey> generate(DkimAlgorithm algorithm);

  DkimAlgorithm algorithm() const { return algorithm_; }
  EVP_PKEY* pkey() const { return key_.get(); }
  std::string private_pem() const;
  // The p= value of the key record (RFC 6376 §3.6.1): base64 of the DER
  // SubjectPublicKeyInfo for RSA, of the raw 32-octet key for Ed25519 (RFC 8463 §4).
  std::string public_record_value() const;
  // "v=DKIM1; k=rsa; p=…"
  std::string txt_record() const;
  // The signature of data: RSASSA-PKCS1-v1_5 over SHA-256(data), or
  // Ed25519 over SHA-256(data) (RFC 8463 §3).
  std::string sign(std::string_view data) const;

  explicit DkimPrivateKey(EVP_PKEY* key, DkimAlgorithm algorithm)
      : key_(key, EVP_PKEY_free), algorithm_(algorithm) {}

 private:
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key_;
  DkimAlgorithm algorithm_;
};

// The header fields signed when present (RFC 6376 §5.4.1, with Message-ID and
// the MIME fields that decide how the body is read).
const std::vector<std::string>& dkim_signed_header_names();

class DkimSigner {
 public:
  DkimSigner(std::shared_ptr<const DkimPrivateKey> key, std::string domain, std::string selector,
             std::int64_t unix_time);
  // Header fields, CR LF terminated; may be called several times (fields tern
  // adds itself, then the message's own section). The empty line is ignored.
  void headers(std::string_view section);
  void body(std::string_view chunk) { body_.update(chunk); }
  // The whole field, "DKIM-Signature: v=1; …\r\n", folded.
  std::string finish();

 private:
  std::shared_ptr<const DkimPrivateKey> key_;
  std::string domain_;
  std::string selector_;
  std::int64_t time_;
  std::vector<HeaderField> fields_;
  BodyHasher body_{Canon::kRelaxed};
};

}  // namespace tern::auth
