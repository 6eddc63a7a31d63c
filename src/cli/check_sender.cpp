// The sender's SPF, DMARC and DKIM key records for `tern check`, judged the
// way receiving servers judge them (auth/spf.h, auth/dmarc.h,
// auth/dkim_verify.h: the same parsers tern serve uses on received mail).
#include "cli/check_sender.h"

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "auth/dkim_sign.h"
#include "auth/dkim_verify.h"
#include "auth/dmarc.h"
#include "auth/spf.h"
#include "dns/resolver_cares.h"
#include "util/base64.h"
#include "util/cidr.h"
#include "util/text.h"

namespace tern::cli {

namespace {

// RFC 5737 TEST-NET-1: no domain's SPF should let it pass.
constexpr const char* kNobody = "192.0.2.0";

struct Finding {
  std::string what;    // "SPF", "DMARC", "DKIM"
  std::string status;  // found | missing | wrong | unknown
  std::string name;    // where it was looked up
  std::vector<std::string> records;
  std::string summary;      // the line after the status
  std::string explanation;  // "This means: …" (problems only)
  std::string publish;      // what to publish instead (problems only)
};

std::string in_quotes(const std::string& text) {
  return "\"" + text + "\"";
}

// A record as it goes into a zone file: strings of at most 255 octets.
std::string zone_text(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 255)
    out += (out.empty() ? "" : " ") + in_quotes(text.substr(i, 255));
  return out;
}

// Whether text is an SPF record: "v=spf1" alone or followed by a space (RFC 7208 §4.5).
bool is_spf(const std::string& text) {
  return util::istarts_with(text, "v=spf1") && (text.size() == 6 || text[6] == ' ');
}

bool has_all_pass(const std::string& record) {
  for (std::size_t start = 0; start < record.size();) {
    std::size_t end = record.find(' ', start);
    if (end == std::string::npos) end = record.size();
    std::string term = util::to_lower(record.substr(start, end - start));
    if (term == "all" || term == "+all") return true;
    start = end + 1;
  }
  return false;
}

net::awaitable<Finding> spf(dns::Resolver& resolver, const std::string& domain) {
  Finding f;
  f.what = "SPF";
  f.status = "found";
  f.name = domain;
  auto answer = co_await resolver.txt(domain);
  std::string publish = domain +
                        ". IN TXT \"v=spf1 mx -all\" (add ip4:/ip6: or include: for every "
                        "other host or service that sends as " +
                        domain + ")";
  if (dns::is_temporary(answer.error)) {
    f.status = "unknown";
    f.summary = "could not be looked up: " + answer.message;
    f.explanation = "DNS did not answer now; receiving servers would get SPF temperror";
    co_return f;
  }
  for (const auto& r : answer.records)
    if (is_spf(r.text)) f.records.push_back(r.text);
  if (f.records.empty()) {
    f.status = "missing";
    f.summary = domain + " publishes no SPF record (TXT \"v=spf1 …\")";
    f.explanation = "receiving servers cannot tell which hosts may send mail as " + domain +
                    " (SPF none); many treat such mail as suspect, and DMARC can then pass "
                    "only by DKIM";
    f.publish = publish;
    co_return f;
  }
  if (f.records.size() > 1) {
    f.status = "wrong";
    f.summary = domain + " publishes " + std::to_string(f.records.size()) + " SPF records";
    f.explanation =
        "more than one SPF record is a permanent error (RFC 7208 §4.5): receiving "
        "servers get SPF permerror for every message";
    f.publish = "one record that merges them, e.g. " + publish;
    co_return f;
  }
  f.summary = domain + " IN TXT " + in_quotes(f.records.front());
  // Evaluated as a receiver would, for an address nobody sends from.
  auto outcome = co_await auth::spf_check_host(resolver, *util::IpAddress::parse(kNobody), domain,
                                               "postmaster@" + domain, domain);
  if (outcome.result == auth::SpfResult::kPermerror) {
    f.status = "wrong";
    f.explanation = "the record cannot be evaluated (" + outcome.reason +
                    "): receiving servers get SPF permerror for every message";
    f.publish =
        "a corrected record (at most 10 DNS-querying terms, RFC 7208 §4.6.4), e.g. " + publish;
  } else if (outcome.result == auth::SpfResult::kPass) {
    f.status = "wrong";
    f.explanation = std::string(has_all_pass(f.records.front()) ? "\"+all\": " : "") +
                    "any host on the Internet passes SPF for " + domain + " (" + kNobody +
                    ", an address nobody sends from, passes), so SPF proves nothing";
    f.publish =
        "a record that lists only your own senders and ends in -all or ~all, e.g. " + publish;
  } else if (outcome.result == auth::SpfResult::kTemperror) {
    f.explanation = "the record could not be evaluated now (" + outcome.reason + ")";
  }
  co_return f;
}

net::awaitable<Finding> dmarc(dns::Resolver& resolver, const std::string& domain) {
  Finding f;
  f.what = "DMARC";
  f.status = "found";
  f.name = "_dmarc." + domain;
  std::string publish = "_dmarc." + domain + ". IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@" +
                        domain +
                        "\" (then p=quarantine or p=reject once reports show only "
                        "your own mail)";
  std::string org = auth::organizational_domain(domain);
  std::vector<std::string> names = {domain};
  if (org != domain) names.push_back(org);
  for (const auto& d : names) {
    auto answer = co_await resolver.txt("_dmarc." + d);
    if (dns::is_temporary(answer.error)) {
      f.status = "unknown";
      f.name = "_dmarc." + d;
      f.summary = "could not be looked up: " + answer.message;
      f.explanation = "DNS did not answer now; receiving servers would get DMARC temperror";
      co_return f;
    }
    for (const auto& r : answer.records)
      if (auth::is_dmarc_record(r.text)) f.records.push_back(r.text);
    if (!f.records.empty()) {
      f.name = "_dmarc." + d;
      break;
    }
  }
  if (f.records.empty()) {
    f.status = "missing";
    f.summary = "no DMARC record at _dmarc." + domain +
                (org != domain ? " nor at _dmarc." + org + " (the organisational domain)" : "");
    f.explanation =
        "receiving servers have no policy for mail that fails SPF and DKIM "
        "alignment: mail forged in the name of " +
        domain + " is not refused, and no reports are sent";
    f.publish = publish;
    co_return f;
  }
  bool inherited = f.name != "_dmarc." + domain;
  if (f.records.size() > 1) {
    f.status = "wrong";
    f.summary = f.name + " has " + std::to_string(f.records.size()) + " DMARC records";
    f.explanation =
        "with more than one record receivers apply no DMARC policy at all "
        "(RFC 7489 §6.6.3)";
    f.publish = "one record at " + f.name;
    co_return f;
  }
  const std::string& text = f.records.front();
  f.summary = f.name + " IN TXT " + in_quotes(text) +
              (inherited ? " (the organisational domain's record, for " + domain + " too)" : "");
  auto parse = auth::parse_dmarc_record(text);
  if (!parse.record) {
    f.status = "wrong";
    f.explanation = "the record is not usable (" + parse.error +
                    "): receiving servers get DMARC permerror and apply no policy; a record "
                    "needs v=DMARC1 first and a p= tag (none, quarantine or reject)";
    f.publish = publish;
    co_return f;
  }
  auto policy = inherited && parse.record->sp ? *parse.record->sp : parse.record->p;
  if (policy == auth::DmarcPolicy::kNone)
    f.explanation = "p=none: receivers only report failures; forged mail is still delivered";
  co_return f;
}

net::awaitable<Finding> dkim(dns::Resolver& resolver, const std::string& domain,
                             const CheckOptions& o) {
  std::string name = o.dkim_selector + "._domainkey." + domain;
  Finding f;
  f.what = "DKIM";
  f.status = "found";
  f.name = name;
  std::string publish = o.dkim_key ? name + ". IN TXT (" + zone_text(o.dkim_key->txt_record()) + ")"
                                   : "the key record `tern dkim keygen " + domain + " " +
                                         o.dkim_selector + "` printed";
  auto answer = co_await resolver.txt(name);
  if (dns::is_temporary(answer.error)) {
    f.status = "unknown";
    f.summary = "could not be looked up: " + answer.message;
    f.explanation = "DNS did not answer now; receiving servers would get DKIM temperror";
    co_return f;
  }
  for (const auto& r : answer.records) f.records.push_back(r.text);
  if (f.records.empty()) {
    f.status = "missing";
    f.summary = "no key record at " + name;
    f.explanation = "receiving servers cannot check signatures made with selector " +
                    o.dkim_selector + " (DKIM permerror: no key), so DMARC can pass only by SPF";
    f.publish = publish;
    co_return f;
  }
  if (f.records.size() > 1) {
    f.status = "wrong";
    f.summary = name + " has " + std::to_string(f.records.size()) + " TXT records";
    f.explanation = "receiving servers may take any one of them: one key record per selector";
    f.publish = publish;
    co_return f;
  }
  f.summary = name + " IN TXT " + in_quotes(util::printable(f.records.front(), 120));
  auto parse = auth::parse_dkim_key_record(f.records.front());
  if (!parse.key) {
    f.status = "wrong";
    f.explanation = "the record is not a usable DKIM key (" + parse.error +
                    "): every signature with selector " + o.dkim_selector + " fails";
    f.publish = publish;
  } else if (parse.key->p.empty()) {
    f.status = "wrong";
    f.explanation = "the key is revoked (p= is empty): every signature with selector " +
                    o.dkim_selector + " fails";
    f.publish = publish;
  } else if (o.dkim_key) {
    auto mine = util::base64_decode(o.dkim_key->public_record_value());
    if (!mine || *mine != parse.key->p) {
      f.status = "wrong";
      f.explanation = "the key in DNS is not the public half of --dkim " + o.dkim_key_file +
                      ": signatures made with that key fail (DKIM fail)";
      f.publish = publish;
    } else {
      f.explanation = "the key matches --dkim " + o.dkim_key_file;
    }
  }
  co_return f;
}

void print(CheckReport& r, const Finding& f, nlohmann::json& j) {
  std::string status = f.status == "found" ? "found" : util::to_upper(f.status);
  r.note(f.what + ": " + status + ": " + f.summary);
  bool problem = f.status != "found";
  if (!f.explanation.empty())
    r.note(std::string("   ") + (problem ? "This means: " : "") + f.explanation);
  if (!f.publish.empty()) r.note("   Publish: " + f.publish);
  nlohmann::json one = {
      {"status", f.status}, {"name", f.name}, {"records", f.records}, {"summary", f.summary}};
  if (!f.explanation.empty()) one["explanation"] = f.explanation;
  if (!f.publish.empty()) one["publish"] = f.publish;
  j[util::to_lower(f.what)] = one;
}

}  // namespace

net::awaitable<void> report_sender_records(asio::any_io_executor ex, const CheckOptions& o,
                                           CheckReport& r) {
  auto at = o.from.rfind('@');
  if (at == std::string::npos) co_return;
  std::string domain = util::to_lower(o.from.substr(at + 1));
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (domain.empty() || domain.front() == '[' || domain.find('.') == std::string::npos) co_return;
  dns::CaresOptions dns_options;
  dns_options.servers = o.dns_servers;
  dns_options.timeout = std::min<std::chrono::milliseconds>(
      dns_options.timeout, std::chrono::milliseconds(o.timeout_s * 1000 / 3 + 1));
  std::unique_ptr<dns::CaresResolver> resolver;
  try {
    resolver = std::make_unique<dns::CaresResolver>(ex, dns_options);
  } catch (const std::exception&) {
    co_return;  // a bad --dns-server: the MX lookup's verdict says so
  }
  r.heading("Sender records of " + domain + " (what receiving servers check)");
  nlohmann::json j = {{"domain", domain}};
  Finding spf_found = co_await spf(*resolver, domain);
  print(r, spf_found, j);
  if (spf_found.status == "unknown") {
    // DNS is not answering: the other lookups would only wait as long again.
    r.note("DKIM and DMARC: not looked up (DNS did not answer)");
    r.set("sender_records", j);
    co_return;
  }
  if (!o.dkim_selector.empty()) {
    Finding key = co_await dkim(*resolver, domain, o);
    print(r, key, j);
  }
  Finding policy = co_await dmarc(*resolver, domain);
  print(r, policy, j);
  r.set("sender_records", j);
}

}  // namespace tern::cli
