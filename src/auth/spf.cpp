// SPF evaluation (RFC 7208); see spf.h. A record is parsed whole before any
// term is evaluated, so a syntax error anywhere is a permerror (§4.6); terms
// are then evaluated left to right, sharing one lookup budget across
// include and redirect (§4.6.4).
#include "auth/spf.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "util/text.h"

namespace tern::auth {

namespace {

// A result decided before the record's end: a permerror or temperror.
struct SpfStop {
  SpfResult result;
  std::string reason;
};

enum class Kind { kAll, kInclude, kA, kMx, kPtr, kIp4, kIp6, kExists };

struct Mechanism {
  Kind kind = Kind::kAll;
  SpfResult qualifier = SpfResult::kPass;
  std::string text;         // the term as written, for reasons
  std::string domain_spec;  // unexpanded; empty: the current domain
  unsigned cidr4 = 32, cidr6 = 128;
  util::Cidr network;  // ip4, ip6
};

struct Record {
  std::vector<Mechanism> mechanisms;
  std::optional<std::string> redirect;
};

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}

// toplabel (RFC 7208 §7.1): alphanumerics and hyphens, at least one letter,
// no hyphen at either end.
bool is_toplabel(std::string_view label) {
  if (label.empty() || label.front() == '-' || label.back() == '-') return false;
  bool alpha = false;
  for (char c : label) {
    if (!is_alnum(c) && c != '-') return false;
    alpha = alpha || is_alpha(c);
  }
  return alpha;
}

// A macro-string (§7.1) that is well-formed, checked by expanding it.
bool valid_macro_string(std::string_view spec) {
  SpfMacroContext dummy{"l@d.example", "d.example", "h.example", {}};
  return expand_spf_macros(spec, dummy).has_value();
}

// domain-spec = macro-string domain-end; domain-end = "." toplabel ["."] / macro-expand.
bool valid_domain_spec(std::string_view spec) {
  if (spec.empty() || !valid_macro_string(spec)) return false;
  if (spec.back() == '}') return true;
  if (spec.size() >= 2 && spec[spec.size() - 2] == '%' &&
      (spec.back() == '_' || spec.back() == '-' || spec.back() == '%'))
    return true;
  if (spec.back() == '.') spec.remove_suffix(1);
  auto dot = spec.rfind('.');
  if (dot == std::string_view::npos) return false;
  return is_toplabel(spec.substr(dot + 1));
}

// "/" (0 / %x31-39 0*2DIGIT), at most max.
std::optional<unsigned> parse_cidr_length(std::string_view digits, unsigned max) {
  if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0'))
    return std::nullopt;
  unsigned value = 0;
  for (char c : digits) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

// Splits a trailing "/N" off text; the length, or nothing if there is none.
// A bad length is an error.
std::optional<unsigned> take_cidr(std::string& text, unsigned max, bool double_slash) {
  std::size_t slash = text.rfind('/');
  if (slash == std::string::npos) return std::nullopt;
  std::string_view digits = std::string_view(text).substr(slash + 1);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit)) return std::nullopt;
  std::size_t start = slash;
  if (double_slash) {
    if (slash == 0 || text[slash - 1] != '/') return std::nullopt;
    start = slash - 1;
  } else if (slash > 0 && text[slash - 1] == '/') {
    return std::nullopt;  // a "//N" is the IPv6 length, taken first
  }
  auto value = parse_cidr_length(digits, max);
  if (!value) throw SpfStop{SpfResult::kPermerror, "bad CIDR length in \"" + text + "\""};
  text.erase(start);
  return value;
}

SpfResult qualifier_of(char c) {
  switch (c) {
    case '-':
      return SpfResult::kFail;
    case '~':
      return SpfResult::kSoftfail;
    case '?':
      return SpfResult::kNeutral;
    default:
      return SpfResult::kPass;
  }
}

Mechanism parse_mechanism(std::string_view term) {
  Mechanism m;
  m.text = std::string(term);
  auto bad = [&] { return SpfStop{SpfResult::kPermerror, "bad term \"" + m.text + "\""}; };
  if (term.front() == '+' || term.front() == '-' || term.front() == '~' || term.front() == '?') {
    m.qualifier = qualifier_of(term.front());
    term.remove_prefix(1);
  }
  std::size_t end = term.find_first_of(":/");
  std::string name = util::to_lower(term.substr(0, end));
  std::string rest(end == std::string_view::npos ? "" : term.substr(end));
  if (name == "all") {
    if (!rest.empty()) throw bad();
    m.kind = Kind::kAll;
    return m;
  }
  if (name == "ip4" || name == "ip6") {
    bool v6 = name == "ip6";
    m.kind = v6 ? Kind::kIp6 : Kind::kIp4;
    if (rest.size() < 2 || rest[0] != ':') throw bad();
    std::string network = rest.substr(1);
    std::size_t slash = network.find('/');
    std::string address = network.substr(0, slash);
    unsigned char buffer[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, address.c_str(), buffer) != 1) throw bad();
    unsigned length = v6 ? 128 : 32;
    if (slash != std::string::npos) {
      auto parsed = parse_cidr_length(std::string_view(network).substr(slash + 1), length);
      if (!parsed) throw bad();
      length = *parsed;
    }
    // Built from the bytes, not util::Cidr::parse, which reads an IPv4-mapped
    // address as IPv4: in ip6 it is an IPv6 network (that no client address,
    // mapped ones being compared as IPv4, falls into).
    m.network.network.v6 = v6;
    std::copy(buffer, buffer + (v6 ? 16 : 4), m.network.network.bytes.begin());
    m.network.prefix = length;
    m.network.text = network;
    return m;
  }
  bool takes_cidr = name == "a" || name == "mx";
  bool needs_domain = name == "include" || name == "exists";
  if (name == "a")
    m.kind = Kind::kA;
  else if (name == "mx")
    m.kind = Kind::kMx;
  else if (name == "ptr")
    m.kind = Kind::kPtr;
  else if (name == "include")
    m.kind = Kind::kInclude;
  else if (name == "exists")
    m.kind = Kind::kExists;
  else
    throw SpfStop{SpfResult::kPermerror, "unknown mechanism \"" + m.text + "\""};
  if (takes_cidr) {
    if (auto v6 = take_cidr(rest, 128, true)) m.cidr6 = *v6;
    if (auto v4 = take_cidr(rest, 32, false)) m.cidr4 = *v4;
  }
  if (rest.empty()) {
    if (needs_domain) throw bad();
    return m;
  }
  if (rest[0] != ':' || !valid_domain_spec(std::string_view(rest).substr(1))) throw bad();
  m.domain_spec = rest.substr(1);
  return m;
}

// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
bool valid_modifier_name(std::string_view name) {
  if (name.empty() || !is_alpha(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// The terms after "v=spf1" (§4.6.1, §12); throws SpfStop on a syntax error.
Record parse_record(std::string_view text) {
  Record record;
  bool exp = false;
  text.remove_prefix(6);  // "v=spf1"
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == ' ') {
      ++pos;
      continue;
    }
    std::size_t end = text.find(' ', pos);
    std::string_view term = text.substr(pos, end == std::string_view::npos ? end : end - pos);
    pos = end == std::string_view::npos ? text.size() : end;
    std::size_t equals = term.find('=');
    std::size_t name_end = term.find_first_of(":/");
    if (equals != std::string_view::npos &&
        (name_end == std::string_view::npos || equals < name_end)) {
      std::string name = util::to_lower(term.substr(0, equals));
      std::string_view value = term.substr(equals + 1);
      if (!valid_modifier_name(name))
        throw SpfStop{SpfResult::kPermerror, "bad term \"" + std::string(term) + "\""};
      if (name == "redirect" || name == "exp") {
        bool& seen_exp = exp;
        if ((name == "redirect" && record.redirect) || (name == "exp" && seen_exp))
          throw SpfStop{SpfResult::kPermerror, "more than one " + name + " modifier"};
        if (!valid_domain_spec(value))
          throw SpfStop{SpfResult::kPermerror, "bad term \"" + std::string(term) + "\""};
        if (name == "redirect")
          record.redirect = std::string(value);
        else
          seen_exp = true;
      } else if (!valid_macro_string(value)) {
        throw SpfStop{SpfResult::kPermerror, "bad term \"" + std::string(term) + "\""};
      }
      continue;  // unknown modifiers are ignored (§6)
    }
    record.mechanisms.push_back(parse_mechanism(term));
  }
  return record;
}

// A domain check_host() may look up (§4.3): labels of 1–63 octets, at most
// 253 in all, at least two labels.
bool valid_target(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty() || domain.size() > 253 || domain.find('.') == std::string_view::npos)
    return false;
  for (auto label : util::split(domain, '.')) {
    if (label.empty() || label.size() > 63) return false;
  }
  return true;
}

std::string ip_text(const util::IpAddress& ip) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.bytes.data(), text, sizeof text);
  return text;
}

// %{i}: dotted IPv4, or the 32 nibbles of IPv6 dot-separated (§7.3).
std::string macro_ip(const util::IpAddress& ip) {
  if (!ip.v6) return ip_text(ip);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < 16; ++i) {
    if (i > 0) out += '.';
    out += kHex[ip.bytes[i] >> 4];
    out += '.';
    out += kHex[ip.bytes[i] & 0xf];
  }
  return out;
}

// The URL escaping of uppercase macro letters (§7.3): all but RFC 3986 unreserved.
std::string url_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (is_alnum(static_cast<char>(c)) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

std::string_view local_part(std::string_view sender) {
  auto at = sender.rfind('@');
  return at == std::string_view::npos ? std::string_view() : sender.substr(0, at);
}
std::string_view domain_part(std::string_view sender) {
  auto at = sender.rfind('@');
  return at == std::string_view::npos ? sender : sender.substr(at + 1);
}

// §7.3: a name longer than 253 octets loses labels on the left until it
// fits: the cut is found in one pass and made once.
std::string shorten(std::string name) {
  std::size_t start = 0;
  while (name.size() - start > 253) {
    auto dot = name.find('.', start);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (start > 0) name.erase(0, start);
  return name;
}

struct Evaluation {
  dns::Resolver& resolver;
  util::IpAddress ip;
  std::string sender;
  std::string helo;
  int lookups = 0;
  int voids = 0;
  std::string matched;  // the last term that matched: the outermost one at the end
  std::chrono::steady_clock::time_point deadline;

  // Before every query: past the time limit, the evaluation ends (§4.6.4).
  void check_time(const std::string& name) const {
    if (std::chrono::steady_clock::now() >= deadline)
      throw SpfStop{SpfResult::kTemperror, "time limit reached before looking up " + name};
  }

  void count_lookup(const std::string& term) {
    if (++lookups > kSpfMaxLookups)
      throw SpfStop{SpfResult::kPermerror,
                    "more than " + std::to_string(kSpfMaxLookups) + " DNS lookups at " + term};
  }
  void count_void(const std::string& name) {
    if (++voids > kSpfMaxVoidLookups)
      throw SpfStop{SpfResult::kPermerror, "more than " + std::to_string(kSpfMaxVoidLookups) +
                                               " void lookups (" + name + ")"};
  }
  std::string target(const Mechanism& m, const std::string& domain) const {
    if (m.domain_spec.empty()) return domain;
    return expand(m.domain_spec, domain);
  }
  std::string expand(const std::string& spec, const std::string& domain) const {
    SpfMacroContext context{sender, domain, helo, ip};
    auto expanded = expand_spf_macros(spec, context);
    if (!expanded) throw SpfStop{SpfResult::kPermerror, "bad macro in \"" + spec + "\""};
    std::string name = *expanded;
    if (!name.empty() && name.back() == '.') name.pop_back();
    return shorten(std::move(name));
  }

  // Whether ip is among name's addresses of its own family (RFC 7208 §5.3);
  // exists_only: any A record at all (§5.7).
  net::awaitable<bool> address_match(const std::string& name, unsigned cidr4, unsigned cidr6,
                                     bool exists_only) {
    check_time(name);
    auto answer = co_await resolver.addresses(name);
    if (dns::is_temporary(answer.error)) throw SpfStop{SpfResult::kTemperror, answer.message};
    bool want_v6 = exists_only ? false : ip.v6;
    bool any = false, match = false;
    for (const auto& record : answer.records) {
      if (record.v6 != want_v6) continue;
      any = true;
      auto cidr = util::Cidr::parse(record.address + "/" + std::to_string(want_v6 ? cidr6 : cidr4));
      if (exists_only || (cidr && cidr->contains(ip))) match = true;
    }
    if (!any) count_void(name);
    co_return match;
  }

  net::awaitable<SpfResult> check_host(std::string domain);
  net::awaitable<bool> matches(const Mechanism& m, const std::string& domain);
};

net::awaitable<bool> Evaluation::matches(const Mechanism& m, const std::string& domain) {
  switch (m.kind) {
    case Kind::kAll:
      co_return true;
    case Kind::kIp4:
    case Kind::kIp6:
      co_return m.network.contains(ip);
    case Kind::kPtr:
      count_lookup(m.text);
      co_return false;  // §5.5: not used; see spf.h
    case Kind::kA: {
      count_lookup(m.text);
      std::string name = target(m, domain);
      bool found = co_await address_match(name, m.cidr4, m.cidr6, false);
      co_return found;
    }
    case Kind::kExists: {
      count_lookup(m.text);
      std::string name = target(m, domain);
      bool found = co_await address_match(name, 32, 128, true);
      co_return found;
    }
    case Kind::kMx: {
      count_lookup(m.text);
      std::string name = target(m, domain);
      check_time(name);
      auto answer = co_await resolver.mx(name);
      if (dns::is_temporary(answer.error)) throw SpfStop{SpfResult::kTemperror, answer.message};
      if (!answer.ok()) {
        count_void(name);
        co_return false;
      }
      if (answer.records.size() > static_cast<std::size_t>(kSpfMaxNamesPerTerm))
        throw SpfStop{SpfResult::kPermerror, "more than " + std::to_string(kSpfMaxNamesPerTerm) +
                                                 " MX records at " + m.text};
      for (const auto& mx : answer.records) {
        if (mx.host.empty()) continue;  // null MX (RFC 7505)
        bool found = co_await address_match(mx.host, m.cidr4, m.cidr6, false);
        if (found) co_return true;
      }
      co_return false;
    }
    case Kind::kInclude: {
      count_lookup(m.text);
      std::string name = target(m, domain);
      SpfResult inner = co_await check_host(name);
      switch (inner) {
        case SpfResult::kPass:
          co_return true;
        case SpfResult::kFail:
        case SpfResult::kSoftfail:
        case SpfResult::kNeutral:
          co_return false;
        case SpfResult::kTemperror:
          throw SpfStop{SpfResult::kTemperror, "include:" + name + " gave temperror"};
        case SpfResult::kPermerror:
        case SpfResult::kNone:
          throw SpfStop{SpfResult::kPermerror,
                        "include:" + name + " gave " + std::string(spf_result_name(inner))};
      }
      co_return false;
    }
  }
  co_return false;
}

// One level of check_host (§4): the record of domain, then its terms.
net::awaitable<SpfResult> Evaluation::check_host(std::string domain) {
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (!valid_target(domain)) co_return SpfResult::kNone;
  check_time(domain);
  auto answer = co_await resolver.txt(domain);
  if (dns::is_temporary(answer.error)) throw SpfStop{SpfResult::kTemperror, answer.message};
  std::vector<std::string> records;
  for (const auto& txt : answer.records) {
    if (util::istarts_with(txt.text, "v=spf1") && (txt.text.size() == 6 || txt.text[6] == ' '))
      records.push_back(txt.text);
  }
  if (records.empty()) co_return SpfResult::kNone;
  if (records.size() > 1)
    throw SpfStop{SpfResult::kPermerror, domain + " publishes more than one SPF record"};
  Record record = parse_record(records.front());
  for (const auto& m : record.mechanisms) {
    bool match = co_await matches(m, domain);
    if (match) {
      matched = m.text + " in " + domain;
      co_return m.qualifier;
    }
  }
  if (record.redirect) {  // §6.1
    count_lookup("redirect=" + *record.redirect);
    std::string name = expand(*record.redirect, domain);
    SpfResult result = co_await check_host(name);
    if (result == SpfResult::kNone)
      throw SpfStop{SpfResult::kPermerror, "redirect=" + name + " has no SPF record"};
    co_return result;
  }
  co_return SpfResult::kNeutral;
}

}  // namespace

std::string_view spf_result_name(SpfResult result) {
  switch (result) {
    case SpfResult::kNone:
      return "none";
    case SpfResult::kNeutral:
      return "neutral";
    case SpfResult::kPass:
      return "pass";
    case SpfResult::kFail:
      return "fail";
    case SpfResult::kSoftfail:
      return "softfail";
    case SpfResult::kTemperror:
      return "temperror";
    case SpfResult::kPermerror:
      return "permerror";
  }
  return "none";
}

std::optional<std::string> expand_spf_macros(std::string_view spec, const SpfMacroContext& context,
                                             bool exp_letters) {
  constexpr std::size_t kMaxExpansion = 8192;  // a domain-spec is at most 253 octets in the end
  std::string out;
  for (std::size_t i = 0; i < spec.size(); ++i) {
    char c = spec[i];
    if (c != '%') {
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e)
        return std::nullopt;  // macro-literal: visible ASCII only
      out += c;
      continue;
    }
    if (++i >= spec.size()) return std::nullopt;
    c = spec[i];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (c == '_') {
      out += ' ';
      continue;
    }
    if (c == '-') {
      out += "%20";
      continue;
    }
    if (c != '{') return std::nullopt;
    std::size_t close = spec.find('}', i);
    if (close == std::string_view::npos || close == i + 1) return std::nullopt;
    std::string_view body = spec.substr(i + 1, close - i - 1);
    i = close;
    char letter = body[0];
    bool escape = letter >= 'A' && letter <= 'Z';
    std::string value;
    switch (util::ascii_lower(letter)) {
      case 's':
        value = context.sender;
        break;
      case 'l':
        value = std::string(local_part(context.sender));
        break;
      case 'o':
        value = std::string(domain_part(context.sender));
        break;
      case 'd':
        value = context.domain;
        break;
      case 'i':
        value = macro_ip(context.ip);
        break;
      case 'p':
        value = "unknown";
        break;
      case 'v':
        value = context.ip.v6 ? "ip6" : "in-addr";
        break;
      case 'h':
        value = context.helo;
        break;
      case 'c':
        if (!exp_letters) return std::nullopt;
        value = ip_text(context.ip);
        break;
      case 'r':
        if (!exp_letters) return std::nullopt;
        value = "unknown";
        break;
      case 't':
        if (!exp_letters) return std::nullopt;
        value = "0";
        break;
      default:
        return std::nullopt;
    }
    // transformers = [ *DIGIT ] [ "r" ], then delimiters (§7.1)
    std::size_t pos = 1;
    std::size_t keep = 0;
    bool has_digits = false;
    while (pos < body.size() && is_digit(body[pos])) {
      keep = keep * 10 + static_cast<std::size_t>(body[pos] - '0');
      if (keep > 1000) keep = 1000;
      has_digits = true;
      ++pos;
    }
    if (has_digits && keep == 0) return std::nullopt;
    bool reverse = false;
    if (pos < body.size() && (body[pos] == 'r' || body[pos] == 'R')) {
      reverse = true;
      ++pos;
    }
    std::string delimiters;
    for (; pos < body.size(); ++pos) {
      if (std::string_view(".-+,/_=").find(body[pos]) == std::string_view::npos)
        return std::nullopt;
      delimiters += body[pos];
    }
    if (delimiters.empty()) delimiters = ".";
    if (has_digits || reverse || delimiters != ".") {
      std::vector<std::string> parts{""};
      for (char v : value) {
        if (delimiters.find(v) != std::string::npos) {
          parts.emplace_back();
        } else {
          parts.back() += v;
        }
      }
      if (reverse) std::reverse(parts.begin(), parts.end());
      if (has_digits && keep < parts.size())
        parts.erase(parts.begin(), parts.end() - static_cast<std::ptrdiff_t>(keep));
      value.clear();
      for (std::size_t k = 0; k < parts.size(); ++k) {
        if (k > 0) value += '.';
        value += parts[k];
      }
    }
    out += escape ? url_escape(value) : value;
    // A stranger's record can ask for any number of macros of a stranger's
    // long local part: past kMaxExpansion the expansion is refused
    // (permerror) instead of growing without bound.
    if (out.size() > kMaxExpansion) return std::nullopt;
  }
  if (out.size() > kMaxExpansion) return std::nullopt;
  return out;
}

net::awaitable<SpfOutcome> spf_check_host(dns::Resolver& resolver, util::IpAddress ip,
                                          std::string domain, std::string sender, std::string helo,
                                          std::chrono::milliseconds time_limit) {
  domain = util::to_lower(domain);
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (local_part(sender).empty()) sender = "postmaster@" + std::string(domain_part(sender));
  Evaluation evaluation{resolver,
                        ip,
                        std::move(sender),
                        std::move(helo),
                        0,
                        0,
                        {},
                        std::chrono::steady_clock::now() + time_limit};
  SpfOutcome outcome;
  outcome.domain = domain;
  try {
    outcome.result = co_await evaluation.check_host(domain);
    if (outcome.result == SpfResult::kNone)
      outcome.reason = "no SPF record at " + domain;
    else if (!evaluation.matched.empty())
      outcome.reason = "matched " + evaluation.matched;
    else
      outcome.reason = "no term matched in " + domain;
  } catch (const SpfStop& stop) {
    outcome.result = stop.result;
    outcome.reason = stop.reason;
  }
  outcome.dns_lookups = evaluation.lookups;
  co_return outcome;
}

net::awaitable<SpfOutcome> spf_check_sender(dns::Resolver& resolver, std::string client_ip,
                                            std::string mail_from, std::string helo) {
  SpfOutcome outcome;
  auto ip = util::IpAddress::parse(client_ip);
  std::string sender = mail_from.empty() ? "postmaster@" + helo : mail_from;
  std::string domain(domain_part(sender));
  if (!ip) {
    outcome.result = SpfResult::kNone;
    outcome.domain = domain;
    outcome.reason = "no client address";
    co_return outcome;
  }
  if (domain.empty() || domain.front() == '[') {
    outcome.domain = domain;
    outcome.reason = "no domain to check";
    co_return outcome;
  }
  outcome = co_await spf_check_host(resolver, *ip, domain, sender, helo);
  co_return outcome;
}

}  // namespace tern::auth
