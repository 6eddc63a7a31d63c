// DKIM verification (RFC 6376 §6, RFC 8463, RFC 8301), incremental: the
// header section, the body in chunks, then finish() looks up each key with
// resolver.txt("<s>._domainkey.<d>") and checks every signature.
//
// Choices where the RFCs leave one:
// - At most kMaxSignatures signatures are checked; the others are reported
//   permerror ("too many signatures") without any DNS query.
// - l= (body length) is refused: permerror "body length tag not accepted",
//   since it lets anyone append content under a valid signature (§8.2).
// - x= in the past: fail "signature expired" (§3.5 lets a verifier treat it
//   as invalid; DMARC then does not count it). x= not after t=: permerror.
//   t= more than 15 minutes in the future: permerror "signature from the future".
// - rsa-sha1 is not accepted (RFC 8301 §3.1): permerror; RSA keys below
//   1024 bits: fail (RFC 8301 §3.2).
// - DNS: a temporary failure gives temperror; no record (NXDOMAIN, no TXT, no
//   key record among them) permerror "no key"; p= empty: permerror "key revoked".
// Any bytes in a tag list are survived: what does not parse is permerror.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim_canon.h"
#include "auth/dkim_result.h"
#include "dns/resolver.h"
#include "net/awaitable.h"

namespace tern::auth {

// A public key record (RFC 6376 §3.6.1), already checked for the tags that
// make it unusable.
struct DkimKeyRecord {
  std::string k = "rsa";         // rsa | ed25519
  std::string p;                 // raw key octets (decoded base64); empty = revoked
  bool strict_identity = false;  // t=s: i= must be exactly d= (§3.6.1)
  bool testing = false;          // t=y
};
// nullopt with why: not a key record (v= other than DKIM1, a broken tag list),
// or unusable for email signatures (s= without email or *, h= without sha256,
// an unknown k=, bad base64).
struct KeyParse {
  std::optional<DkimKeyRecord> key;
  std::string error;
};
KeyParse parse_dkim_key_record(std::string_view txt);

// One DKIM-Signature field, parsed (§3.5).
struct DkimSignature {
  std::string raw;  // the field as it appears, for the header hash
  std::string a, d, s, i;
  std::string bh, b;   // decoded
  std::string b_text;  // b= as written, without white space (header.b)
  Canon header_canon = Canon::kSimple, body_canon = Canon::kSimple;
  std::vector<std::string> h;
  std::optional<std::int64_t> t, x;
};

class DkimVerifier {
 public:
  static constexpr std::size_t kMaxSignatures = 10;

  explicit DkimVerifier(std::int64_t now_unix);
  ~DkimVerifier();
  // The whole header section, once, before the body.
  void headers(std::string_view section);
  void body(std::string_view chunk);
  // No more body; whether the message had any DKIM-Signature field.
  bool signed_message() const { return !results_.empty(); }
  net::awaitable<std::vector<DkimResult>> finish(dns::Resolver& resolver);
  // The same as finish() with the key records given: key_txt(domain) returns
  // the TXT answer for "<s>._domainkey.<d>" (for tests and tools).
  std::vector<DkimResult> finish_with(
      const std::function<dns::TxtResult(const std::string& name)>& key_txt);

 private:
  struct Pending;
  void finish_bodies();
  DkimResult check(Pending& p, const dns::TxtResult& answer) const;

  std::int64_t now_;
  std::vector<HeaderField> fields_;
  std::vector<std::unique_ptr<Pending>> pending_;
  std::vector<DkimResult> results_;  // one per signature, "" result until checked
  std::unique_ptr<BodyHasher> simple_, relaxed_;
  std::string simple_hash_, relaxed_hash_;
  bool bodies_done_ = false;
};

}  // namespace tern::auth
