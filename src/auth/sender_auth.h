// The sender checks of mail from unauthenticated clients (SPEC §2
// [sender_auth]): SPF (RFC 7208) of the MAIL FROM (or HELO) domain, DMARC
// (RFC 7489) over the SPF and DKIM results, and the Authentication-Results
// header field (RFC 8601) that carries them. DNS goes through the resolver
// given (c-ares on the caller's event loop, behind a shared TTL cache); a DNS
// failure gives temperror, never a rejection.
#pragma once

#include <string>
#include <vector>

#include "auth/dkim_result.h"
#include "config/config.h"
#include "dns/caching_resolver.h"
#include "dns/resolver.h"
#include "net/awaitable.h"

namespace tern::auth {

struct SenderAuthInput {
  std::string client_ip;    // textual, IPv4 or IPv6
  std::string helo;         // the EHLO/HELO argument
  std::string mail_from;    // the reverse-path without <>; empty for the null sender
  std::string from_domain;  // the RFC 5322 From domain; empty: none or several
  std::vector<DkimResult> dkim;
  // A From field is there but names no single domain tern can read (several
  // From fields, several mailboxes, a malformed address, a header section too
  // long to read): DMARC cannot pass, and the message is quarantined
  // (RFC 7489 §6.6.1).
  bool from_unusable = false;
};

struct SenderAuthVerdict {
  // One complete header field, CRLF-terminated:
  // "Authentication-Results: <hostname>; spf=pass smtp.mailfrom=…; dkim=…; dmarc=…\r\n"
  std::string header;
  enum class Action { kAccept, kQuarantine, kReject } action = Action::kAccept;
  std::string reason;  // for the logs: why quarantine or reject
};

// Lookups go through the process-wide dns::DnsCache::shared() (unless
// resolver already is a dns::CachingResolver). Nothing to do (an empty
// header, kAccept) when config.sender_auth.verify is off. The action is
// kReject only when DMARC fails, the policy applied is reject and
// dmarc_reject is on; with dmarc_reject off such mail is quarantined, as
// Exchange Online treats p=reject by default. DNS trouble anywhere makes the
// DMARC result temperror: never kReject.
net::awaitable<SenderAuthVerdict> check_sender(const SenderAuthInput& input,
                                               const config::Config& config,
                                               dns::Resolver& resolver);
// The same with the cache given: nullptr asks resolver every time (tests).
net::awaitable<SenderAuthVerdict> check_sender(const SenderAuthInput& input,
                                               const config::Config& config,
                                               dns::Resolver& resolver, dns::DnsCache* cache);

}  // namespace tern::auth
