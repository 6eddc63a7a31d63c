// check_sender: SPF of the MAIL FROM (or HELO) identity, DMARC over it and the
// DKIM results, and the Authentication-Results field (RFC 8601 §2.2) that
// reports them, one result per line; see sender_auth.h for the action rules.
#include "auth/sender_auth.h"

#include "auth/dmarc.h"
#include "auth/spf.h"

namespace tern::auth {

namespace {

constexpr std::size_t kMaxComment = 120;

bool is_atext(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-/=?^_`{|}~.@").find(c) != std::string_view::npos;
}

// A property value (RFC 8601 §2.2 pvalue): as it is when it is plain, else a
// quoted-string; control characters (CR, LF among them) are dropped.
std::string pvalue(std::string_view s) {
  bool plain = !s.empty();
  for (char c : s) plain = plain && is_atext(c);
  if (plain) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A word (RFC 8601 result or method value) from text that came from elsewhere.
std::string word(std::string_view s) {
  std::string out;
  for (char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') out += c;
  }
  return out.empty() ? "neutral" : out;
}

// " (text)" with what could end the comment or the line removed, or "".
std::string comment(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '(' || c == ')' || c == '\\') continue;
    out += c;
    if (out.size() >= kMaxComment) break;
  }
  return out.empty() ? "" : " (" + out + ")";
}

std::string domain_of(const std::string& address) {
  auto at = address.rfind('@');
  return at == std::string::npos ? address : address.substr(at + 1);
}

std::string spf_part(const SenderAuthInput& input, const SpfOutcome& spf) {
  std::string part = "spf=" + std::string(spf_result_name(spf.result)) + comment(spf.reason);
  if (input.mail_from.empty()) return part + " smtp.helo=" + pvalue(input.helo);
  return part + " smtp.mailfrom=" + pvalue(input.mail_from);
}

std::string dkim_part(const DkimResult& dkim) {
  std::string part = "dkim=" + word(dkim.result) + comment(dkim.reason);
  if (!dkim.domain.empty()) part += " header.d=" + pvalue(dkim.domain);
  if (!dkim.selector.empty()) part += " header.s=" + pvalue(dkim.selector);
  if (!dkim.b.empty()) part += " header.b=" + pvalue(dkim.b);
  return part;
}

std::string dmarc_part(const DmarcOutcome& dmarc) {
  std::string part = "dmarc=" + std::string(dmarc_result_name(dmarc.result));
  if (dmarc.result == DmarcResult::kPass || dmarc.result == DmarcResult::kFail) {
    part += " (p=" + std::string(dmarc_policy_name(dmarc.published));
    if (dmarc.subdomain_policy)
      part += " sp=" + std::string(dmarc_policy_name(*dmarc.subdomain_policy));
    part += " dis=" + std::string(dmarc_policy_name(dmarc.disposition)) + ")";
  } else {
    part += comment(dmarc.reason);
  }
  if (!dmarc.from_domain.empty()) part += " header.from=" + pvalue(dmarc.from_domain);
  return part;
}

}  // namespace

net::awaitable<SenderAuthVerdict> check_sender(const SenderAuthInput& input,
                                               const config::Config& config,
                                               dns::Resolver& resolver) {
  dns::DnsCache* cache = dynamic_cast<dns::CachingResolver*>(&resolver) != nullptr
                             ? nullptr
                             : &dns::DnsCache::shared();
  auto verdict = co_await check_sender(input, config, resolver, cache);
  co_return verdict;
}

net::awaitable<SenderAuthVerdict> check_sender(const SenderAuthInput& input,
                                               const config::Config& config,
                                               dns::Resolver& resolver, dns::DnsCache* cache) {
  SenderAuthVerdict verdict;
  if (!config.sender_auth.verify) co_return verdict;
  std::optional<dns::CachingResolver> cached;
  if (cache != nullptr) cached.emplace(resolver, *cache);
  dns::Resolver& lookups = cached ? static_cast<dns::Resolver&>(*cached) : resolver;

  SpfOutcome spf = co_await spf_check_sender(lookups, input.client_ip, input.mail_from, input.helo);
  DmarcInput dmarc_input;
  dmarc_input.from_domain = input.from_domain;
  dmarc_input.spf = spf.result;
  dmarc_input.spf_domain = input.mail_from.empty() ? input.helo : domain_of(input.mail_from);
  dmarc_input.dkim = input.dkim;
  dmarc_input.sample =
      dmarc_sample(input.client_ip + "|" + input.mail_from + "|" + input.from_domain);
  DmarcOutcome dmarc;
  if (input.from_unusable) {
    dmarc.result = DmarcResult::kPermerror;
    dmarc.reason = "no single readable From domain";
  } else {
    dmarc = co_await dmarc_check(lookups, std::move(dmarc_input));
  }

  std::string header =
      "Authentication-Results: " + config.hostname + ";\r\n\t" + spf_part(input, spf) + ";\r\n\t";
  if (input.dkim.empty()) header += "dkim=none;\r\n\t";
  for (const auto& dkim : input.dkim) header += dkim_part(dkim) + ";\r\n\t";
  header += dmarc_part(dmarc) + "\r\n";
  verdict.header = std::move(header);

  if (dmarc.result == DmarcResult::kFail && dmarc.disposition != DmarcPolicy::kNone) {
    bool reject = dmarc.disposition == DmarcPolicy::kReject && config.sender_auth.dmarc_reject;
    verdict.action =
        reject ? SenderAuthVerdict::Action::kReject : SenderAuthVerdict::Action::kQuarantine;
    verdict.reason = "DMARC " + std::string(dmarc_policy_name(dmarc.disposition)) + " for " +
                     dmarc.from_domain + " (policy of " + dmarc.policy_domain +
                     "): " + dmarc.reason + "; SPF " + std::string(spf_result_name(spf.result));
  }
  if (input.from_unusable) {
    verdict.action = SenderAuthVerdict::Action::kQuarantine;
    verdict.reason = "DMARC permerror: no single readable From domain";
  }
  co_return verdict;
}

}  // namespace tern::auth
