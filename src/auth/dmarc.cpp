// DMARC policy discovery and evaluation (RFC 7489); see dmarc.h.
#include "auth/dmarc.h"

#include <libpsl.h>

#include "util/text.h"

namespace tern::auth {

namespace {

const psl_ctx_t* public_suffixes() {
  static const psl_ctx_t* context = [] {
    const psl_ctx_t* latest = psl_latest(nullptr);
    return latest != nullptr ? latest : psl_builtin();
  }();
  return context;
}

std::optional<DmarcPolicy> policy_of(std::string_view value) {
  std::string v = util::to_lower(value);
  if (v == "none") return DmarcPolicy::kNone;
  if (v == "quarantine") return DmarcPolicy::kQuarantine;
  if (v == "reject") return DmarcPolicy::kReject;
  return std::nullopt;
}

DmarcPolicy lower(DmarcPolicy p) {
  return p == DmarcPolicy::kReject ? DmarcPolicy::kQuarantine : DmarcPolicy::kNone;
}

std::string strip_dot(std::string domain) {
  domain = util::to_lower(domain);
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  return domain;
}

// The DMARC records among name's TXT records, or a temporary failure.
struct Lookup {
  std::vector<std::string> records;
  bool temporary = false;
  std::string message;
};

net::awaitable<Lookup> lookup(dns::Resolver& resolver, const std::string& domain) {
  auto answer = co_await resolver.txt("_dmarc." + domain);
  Lookup found;
  if (dns::is_temporary(answer.error)) {
    found.temporary = true;
    found.message = answer.message;
    co_return found;
  }
  for (const auto& txt : answer.records) {
    if (is_dmarc_record(txt.text)) found.records.push_back(txt.text);
  }
  co_return found;
}

}  // namespace

std::string_view dmarc_result_name(DmarcResult result) {
  switch (result) {
    case DmarcResult::kNone:
      return "none";
    case DmarcResult::kPass:
      return "pass";
    case DmarcResult::kFail:
      return "fail";
    case DmarcResult::kTemperror:
      return "temperror";
    case DmarcResult::kPermerror:
      return "permerror";
  }
  return "none";
}

std::string_view dmarc_policy_name(DmarcPolicy policy) {
  switch (policy) {
    case DmarcPolicy::kNone:
      return "none";
    case DmarcPolicy::kQuarantine:
      return "quarantine";
    case DmarcPolicy::kReject:
      return "reject";
  }
  return "none";
}

bool is_dmarc_record(std::string_view text) {
  text = util::trim(text);
  if (!text.starts_with("v")) return false;
  text.remove_prefix(1);
  text = util::trim(text);
  if (!text.starts_with("=")) return false;
  text.remove_prefix(1);
  text = util::trim(text);
  if (!text.starts_with("DMARC1")) return false;
  text.remove_prefix(6);
  text = util::trim(text);
  return text.empty() || text.front() == ';';
}

DmarcParse parse_dmarc_record(std::string_view text) {
  DmarcParse parse;
  if (!is_dmarc_record(text)) {
    parse.error = "not a DMARC record";
    return parse;
  }
  DmarcRecord record;
  std::optional<DmarcPolicy> p;
  bool p_given = false, rua = false, sp_bad = false;
  for (auto tag : util::split(text, ';')) {
    tag = util::trim(tag);
    auto equals = tag.find('=');
    if (equals == std::string_view::npos) continue;
    std::string name = util::to_lower(util::trim(tag.substr(0, equals)));
    std::string_view value = util::trim(tag.substr(equals + 1));
    if (name == "p") {
      p_given = true;
      p = policy_of(value);
    } else if (name == "sp") {
      record.sp = policy_of(value);
      sp_bad = !record.sp.has_value();
    } else if (name == "adkim") {
      record.strict_dkim = util::iequals(value, "s");
    } else if (name == "aspf") {
      record.strict_spf = util::iequals(value, "s");
    } else if (name == "pct") {
      auto n = util::parse_uint(value);
      if (n && *n <= 100) record.pct = static_cast<unsigned>(*n);
    } else if (name == "rua") {
      rua = value.find(':') != std::string_view::npos;
    }
  }
  if (!p || sp_bad) {
    // §6.6.3 step 6: with a usable rua, act as p=none; without, no policy.
    if (!rua) {
      parse.error = !p_given ? "no p tag" : (!p ? "bad p tag" : "bad sp tag");
      return parse;
    }
    p = DmarcPolicy::kNone;
    record.sp.reset();
  }
  record.p = *p;
  parse.record = record;
  return parse;
}

std::string organizational_domain(std::string_view domain) {
  std::string lower = strip_dot(std::string(domain));
  const char* registrable = psl_registrable_domain(public_suffixes(), lower.c_str());
  return registrable != nullptr ? std::string(registrable) : lower;
}

bool dmarc_aligned(std::string_view a, std::string_view b, bool strict) {
  std::string x = strip_dot(std::string(a)), y = strip_dot(std::string(b));
  if (x.empty() || y.empty()) return false;
  if (x == y) return true;
  return !strict && organizational_domain(x) == organizational_domain(y);
}

unsigned dmarc_sample(std::string_view key) {
  std::uint32_t hash = 2166136261u;  // FNV-1a, 32 bits
  for (unsigned char c : key) {
    hash ^= c;
    hash *= 16777619u;
  }
  return hash % 100;
}

net::awaitable<DmarcOutcome> dmarc_check(dns::Resolver& resolver, DmarcInput input) {
  DmarcOutcome out;
  out.from_domain = strip_dot(input.from_domain);
  if (out.from_domain.empty()) {
    out.reason = "no single From domain";
    co_return out;
  }
  // Policy discovery (§6.6.3): the From domain, then its organisational domain.
  std::string policy_domain = out.from_domain;
  Lookup found = co_await lookup(resolver, policy_domain);
  std::string org = organizational_domain(out.from_domain);
  if (!found.temporary && found.records.empty() && org != out.from_domain) {
    policy_domain = org;
    found = co_await lookup(resolver, policy_domain);
  }
  if (found.temporary) {
    out.result = DmarcResult::kTemperror;
    out.reason = found.message;
    co_return out;
  }
  if (found.records.size() != 1) {
    out.reason = found.records.empty() ? "no DMARC record"
                                       : "_dmarc." + policy_domain + " has several DMARC records";
    co_return out;
  }
  out.policy_domain = policy_domain;
  DmarcParse parse = parse_dmarc_record(found.records.front());
  if (!parse.record) {
    out.result = DmarcResult::kPermerror;
    out.reason = "_dmarc." + policy_domain + ": " + parse.error;
    co_return out;
  }
  const DmarcRecord& record = *parse.record;
  out.published = record.p;
  out.policy = record.p;
  if (policy_domain != out.from_domain && record.sp) {  // §6.3 sp: subdomains of the org domain
    out.subdomain_policy = record.sp;
    out.policy = *record.sp;
  }
  // Identifier alignment (§3.1, §4.2).
  out.spf_aligned = input.spf == SpfResult::kPass &&
                    dmarc_aligned(input.spf_domain, out.from_domain, record.strict_spf);
  bool dkim_temporary = false;
  for (const auto& dkim : input.dkim) {
    if (dkim.result == "pass" && dmarc_aligned(dkim.domain, out.from_domain, record.strict_dkim))
      out.dkim_aligned = true;
    if (dkim.result == "temperror") dkim_temporary = true;
  }
  if (out.spf_aligned || out.dkim_aligned) {
    out.result = DmarcResult::kPass;
    out.reason = out.spf_aligned ? "SPF aligned" : "DKIM aligned";
    co_return out;
  }
  if (input.spf == SpfResult::kTemperror || dkim_temporary) {
    // A check that could have passed did not finish: never act on it.
    out.result = DmarcResult::kTemperror;
    out.reason = "SPF or DKIM temperror";
    co_return out;
  }
  out.result = DmarcResult::kFail;
  out.disposition = input.sample < record.pct ? out.policy : lower(out.policy);
  out.reason = "neither SPF nor DKIM aligned with " + out.from_domain;
  if (out.disposition != out.policy)
    out.reason += " (outside pct=" + std::to_string(record.pct) + ")";
  co_return out;
}

}  // namespace tern::auth
