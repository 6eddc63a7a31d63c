#include "smtp/address.h"

#include <arpa/inet.h>

#include <cstring>

#include "util/text.h"

namespace tern::smtp {

namespace {

bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

// atext of RFC 5322 §3.2.3, plus UTF-8 octets under RFC 6531.
bool is_atext(unsigned char c, bool utf8) {
  if (is_alpha(c) || is_digit(c)) return true;
  if (c >= 0x80) return utf8;
  return std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr && c != 0;
}

// Dot-string = Atom *("." Atom)
bool valid_dot_string(std::string_view s, bool utf8) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = s[i];
    if (c == '.') {
      if (s[i - 1] == '.') return false;
    } else if (!is_atext(c, utf8)) {
      return false;
    }
  }
  return true;
}

// Quoted-string = DQUOTE *QcontentSMTP DQUOTE (RFC 5321 §4.1.2)
bool valid_quoted_string(std::string_view s, bool utf8) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    unsigned char c = s[i];
    if (c == '\\') {
      if (i + 2 >= s.size()) return false;
      unsigned char next = s[++i];
      if (next < 32 || (next > 126 && !utf8)) return false;
    } else if (c == '"' || c < 32 || c == 127 || (c > 127 && !utf8)) {
      return false;
    }
  }
  return true;
}

bool valid_local_part(std::string_view s, bool utf8) {
  if (s.empty()) return false;
  return s.front() == '"' ? valid_quoted_string(s, utf8) : valid_dot_string(s, utf8);
}

// Finds the '@' that separates local part and domain: the last one outside a
// quoted local part.
size_t find_at(std::string_view s) {
  bool quoted = false;
  size_t at = std::string_view::npos;
  for (size_t i = 0; i < s.size(); ++i) {
    if (quoted && s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && s[i] == '@') {
      at = i;
    }
  }
  return at;
}

bool valid_label(std::string_view label, bool utf8, bool allow_underscore) {
  if (label.empty() || label.size() > 63) return false;
  for (size_t i = 0; i < label.size(); ++i) {
    unsigned char c = label[i];
    bool ok = is_alpha(c) || is_digit(c) || (c >= 0x80 && utf8) ||
              ((c == '-' || (c == '_' && allow_underscore)) && i > 0 && i + 1 < label.size());
    if (!ok) return false;
  }
  return true;
}

bool valid_hostname(std::string_view domain, bool utf8, bool allow_underscore) {
  if (domain.empty() || domain.size() > kMaxDomain) return false;
  for (auto label : util::split(domain, '.'))
    if (!valid_label(label, utf8, allow_underscore)) return false;
  return true;
}

}  // namespace

std::string Address::str() const {
  return empty() ? std::string() : local + "@" + domain;
}
std::string Address::domain_key() const {
  return util::to_lower(domain);
}
bool Address::is_ascii() const {
  return util::is_ascii(local) && util::is_ascii(domain);
}

std::string Address::unquoted_local() const {
  if (local.size() < 2 || local.front() != '"') return local;
  std::string out;
  for (size_t i = 1; i + 1 < local.size(); ++i) {
    if (local[i] == '\\' && i + 2 < local.size()) ++i;
    out.push_back(local[i]);
  }
  return out;
}

bool valid_address_literal(std::string_view lit) {
  if (lit.size() < 3 || lit.front() != '[' || lit.back() != ']') return false;
  std::string inner(lit.substr(1, lit.size() - 2));
  unsigned char buf[16];
  if (util::istarts_with(inner, "IPv6:")) return inet_pton(AF_INET6, inner.c_str() + 5, buf) == 1;
  return inet_pton(AF_INET, inner.c_str(), buf) == 1;
}

bool valid_domain(std::string_view domain, bool utf8) {
  if (!domain.empty() && domain.front() == '[') return valid_address_literal(domain);
  return valid_hostname(domain, utf8, false);
}

bool valid_helo_domain(std::string_view domain) {
  if (!domain.empty() && domain.front() == '[') return valid_address_literal(domain);
  return valid_hostname(domain, false, true);
}

ParsedPath parse_path(std::string_view text, bool utf8) {
  ParsedPath out;
  text = util::trim(text);
  std::string_view path;
  if (!text.empty() && text.front() == '<') {
    // The path ends at the first '>' outside a quoted string.
    bool quoted = false;
    size_t end = std::string_view::npos;
    for (size_t i = 1; i < text.size(); ++i) {
      if (quoted && text[i] == '\\') {
        ++i;
      } else if (text[i] == '"') {
        quoted = !quoted;
      } else if (!quoted && text[i] == '>') {
        end = i;
        break;
      }
    }
    if (end == std::string_view::npos) return out;
    path = text.substr(1, end - 1);
    out.rest = util::trim(text.substr(end + 1));
    if (!out.rest.empty() && text[end + 1] != ' ') return out;  // "<a@b>X" is not a path
  } else {
    size_t space = text.find(' ');
    path = text.substr(0, space);
    if (space != std::string_view::npos) out.rest = util::trim(text.substr(space + 1));
    if (path.empty()) return out;
  }
  if (path.size() > kMaxPath) {
    out.status = PathStatus::kTooLong;
    return out;
  }
  if (!util::is_valid_utf8(path)) {
    out.status = PathStatus::kBadUtf8;
    return out;
  }
  if (path.empty()) {
    out.null_path = true;
    out.status = PathStatus::kOk;
    return out;
  }
  // A-d-l source route: "@a,@b:local@domain" — accepted and ignored (RFC 5321 §3.6.1).
  if (path.front() == '@') {
    size_t colon = path.find(':');
    if (colon == std::string_view::npos) return out;
    for (auto hop : util::split(path.substr(0, colon), ',')) {
      if (hop.size() < 2 || hop.front() != '@' || !valid_domain(hop.substr(1), utf8)) return out;
    }
    path = path.substr(colon + 1);
  }
  size_t at = find_at(path);
  if (at == std::string_view::npos) {
    if (util::iequals(path, "postmaster")) {
      out.bare_postmaster = true;
      out.address.local = std::string(path);
      out.status = PathStatus::kOk;
    }
    return out;
  }
  std::string_view local = path.substr(0, at);
  std::string_view domain = path.substr(at + 1);
  if (local.size() > kMaxLocalPart || domain.size() > kMaxDomain) {
    out.status = PathStatus::kTooLong;
    return out;
  }
  bool ascii = util::is_ascii(path);
  if (!valid_local_part(local, true) || !valid_domain(domain, true)) return out;
  if (!ascii && !utf8) {
    out.status = PathStatus::kNeedsUtf8;
    return out;
  }
  out.address.local = std::string(local);
  out.address.domain = std::string(domain);
  out.status = PathStatus::kOk;
  return out;
}

std::optional<Address> parse_address(std::string_view text, bool utf8) {
  auto parsed = parse_path(text, utf8);
  if (parsed.status != PathStatus::kOk || parsed.null_path || parsed.bare_postmaster ||
      !parsed.rest.empty())
    return std::nullopt;
  return parsed.address;
}

}  // namespace tern::smtp
