// SPF (RFC 7208): check_host() of a client address against the policy a
// domain publishes in DNS, with the limits of §4.6.4 (10 DNS-querying terms,
// 2 void lookups, 10 MX names per mx), macros (§7) and the seven results of
// §2.6. DNS goes only through the Resolver given, awaited on its event loop.
//
// "ptr" (§5.5, "do not use") is parsed and counted as a lookup but never
// matches: tern sends no PTR query. For the same reason the %{p} macro
// expands to "unknown", which §7.3 allows when no name is validated.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "dns/resolver.h"
#include "net/awaitable.h"
#include "util/cidr.h"

namespace tern::auth {

enum class SpfResult { kNone, kNeutral, kPass, kFail, kSoftfail, kTemperror, kPermerror };

// "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror".
std::string_view spf_result_name(SpfResult result);

struct SpfOutcome {
  SpfResult result = SpfResult::kNone;
  std::string domain;   // the domain check_host() started from (MAIL FROM or HELO domain)
  std::string reason;   // the term that matched or the error, for comments and logs
  int dns_lookups = 0;  // terms that counted against the limit (§4.6.4)
};

constexpr int kSpfMaxLookups = 10;       // RFC 7208 §4.6.4
constexpr int kSpfMaxVoidLookups = 2;    // RFC 7208 §4.6.4
constexpr int kSpfMaxNamesPerTerm = 10;  // MX names of one mx term, §4.6.4
// §4.6.4: at least 20 seconds for a whole evaluation; no query starts after it
// (the one under way ends by the resolver's own timeout), the result is temperror.
constexpr std::chrono::milliseconds kSpfTimeLimit{20'000};

// What macros expand from (RFC 7208 §7.2).
struct SpfMacroContext {
  std::string sender;  // %{s}: local-part@domain
  std::string domain;  // %{d}: the current domain
  std::string helo;    // %{h}
  util::IpAddress ip;  // %{i}, %{v}
};

// Expands the macro-string spec (RFC 7208 §7.1); nothing when it is not
// well-formed. exp_letters: c, r and t are allowed (only in explanations).
std::optional<std::string> expand_spf_macros(std::string_view spec, const SpfMacroContext& context,
                                             bool exp_letters = false);

// check_host(ip, domain, sender) of RFC 7208 §4. sender is local@domain
// (a sender without local-part is "postmaster", §4.3); helo fills %{h}.
net::awaitable<SpfOutcome> spf_check_host(dns::Resolver& resolver, util::IpAddress ip,
                                          std::string domain, std::string sender, std::string helo,
                                          std::chrono::milliseconds time_limit = kSpfTimeLimit);

// The identity SMTP gives (RFC 7208 §2.3, §2.4): the MAIL FROM address, or for
// the null sender (mail_from empty) postmaster@<helo>. client_ip is textual; a
// HELO that is an address literal or not a domain gives none.
net::awaitable<SpfOutcome> spf_check_sender(dns::Resolver& resolver, std::string client_ip,
                                            std::string mail_from, std::string helo);

}  // namespace tern::auth
