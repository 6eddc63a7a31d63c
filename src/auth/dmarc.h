// DMARC (RFC 7489): the policy record of the RFC 5322 From domain, found at
// _dmarc.<domain> or else at _dmarc.<organisational domain> (§6.6.3, the
// organisational domain from the Public Suffix List through libpsl, §3.2);
// identifier alignment of SPF and DKIM, relaxed or strict (§3.1); the policy
// p, or sp for a subdomain, with pct sampling (§6.6.4).
//
// pct: tern samples deterministically, so one message always gets the same
// answer: a message is in the sample when dmarc_sample(key) < pct, the key
// being what sender_auth.cpp gives (client address, MAIL FROM, From domain).
// A message outside the sample gets the next lower policy (§6.6.4: reject ->
// quarantine, quarantine -> none).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim_result.h"
#include "auth/spf.h"
#include "dns/resolver.h"
#include "net/awaitable.h"

namespace tern::auth {

enum class DmarcResult { kNone, kPass, kFail, kTemperror, kPermerror };
enum class DmarcPolicy { kNone, kQuarantine, kReject };

std::string_view dmarc_result_name(DmarcResult result);  // RFC 8601/7489 §11.2 words
std::string_view dmarc_policy_name(DmarcPolicy policy);  // "none", "quarantine", "reject"

struct DmarcRecord {
  DmarcPolicy p = DmarcPolicy::kNone;
  std::optional<DmarcPolicy> sp;  // subdomains; absent: p
  bool strict_spf = false;        // aspf=s
  bool strict_dkim = false;       // adkim=s
  unsigned pct = 100;
};

// A TXT record's tags (§6.3, §6.4); error says what is wrong when record is empty.
struct DmarcParse {
  std::optional<DmarcRecord> record;
  std::string error;
};
// Whether text is a DMARC record at all: it starts with the tag v=DMARC1.
bool is_dmarc_record(std::string_view text);
DmarcParse parse_dmarc_record(std::string_view text);

// The organisational domain (RFC 7489 §3.2): the registrable domain by the
// Public Suffix List, lower case; the domain itself when it is a public
// suffix or cannot be looked up. The list is libpsl's psl_latest(NULL): the
// newer of libpsl's built-in list and Debian's publicsuffix package file
// (/usr/share/publicsuffix), loaded once per process.
std::string organizational_domain(std::string_view domain);

// Whether two domains are aligned (§3.1): equal, or for relaxed alignment
// with the same organisational domain. Compared without case.
bool dmarc_aligned(std::string_view a, std::string_view b, bool strict);

// 0–99 from a stable hash of key (FNV-1a), for pct sampling.
unsigned dmarc_sample(std::string_view key);

struct DmarcInput {
  std::string from_domain;  // RFC 5322 From; empty: none or several (no DMARC)
  SpfResult spf = SpfResult::kNone;
  std::string spf_domain;  // the SPF identity's domain (MAIL FROM, or HELO for <>)
  std::vector<DkimResult> dkim;
  unsigned sample = 0;  // 0–99; see pct above
};

struct DmarcOutcome {
  DmarcResult result = DmarcResult::kNone;
  DmarcPolicy published = DmarcPolicy::kNone;    // p of the record found
  std::optional<DmarcPolicy> subdomain_policy;   // sp, when it applied
  DmarcPolicy policy = DmarcPolicy::kNone;       // p or sp: the policy for this From domain
  DmarcPolicy disposition = DmarcPolicy::kNone;  // what to do on fail, after pct
  std::string from_domain;
  std::string policy_domain;  // where the record was found
  bool spf_aligned = false, dkim_aligned = false;
  std::string reason;  // for logs
};

net::awaitable<DmarcOutcome> dmarc_check(dns::Resolver& resolver, DmarcInput input);

}  // namespace tern::auth
