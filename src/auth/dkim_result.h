// The outcome of checking one DKIM signature (RFC 6376 §6, RFC 8601 §2.7.1):
// what dkim verification (dkim_verify.h) hands to the DMARC evaluation and to
// the Authentication-Results header (sender_auth.h).
#pragma once

#include <string>

namespace tern::auth {

struct DkimResult {
  std::string result;    // RFC 8601 dkim result: pass, fail, neutral, policy, temperror, permerror
  std::string domain;    // the signing domain (d=), lower case
  std::string selector;  // s=
  std::string b;         // the first 8 characters of b= (header.b, RFC 6008)
  std::string reason;    // a short explanation for the header comment and logs
};

}  // namespace tern::auth
