// Mailbox addresses and paths as SMTP carries them (RFC 5321 §4.1.2), with the
// internationalised forms of RFC 6531 where the client declared SMTPUTF8.
// Parsing is strict about what it stores and lenient where real clients are:
// a path without angle brackets is taken (like Postfix), source routes are
// accepted and dropped (RFC 5321 §4.1.1.3, Appendix C).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tern::smtp {

struct Address {
  std::string local;   // as the client wrote it, quotes included ("a b" stays quoted)
  std::string domain;  // as written; compare with domain_key()

  bool empty() const { return local.empty() && domain.empty(); }  // the null path <>
  std::string str() const;                                        // local@domain, or ""
  std::string domain_key() const;                                 // lower-case domain
  // The local part with quoting removed, for mailbox comparison.
  std::string unquoted_local() const;
  bool is_ascii() const;
};

// RFC 5321 §4.5.3.1
constexpr std::size_t kMaxLocalPart = 64;
constexpr std::size_t kMaxDomain = 255;
constexpr std::size_t kMaxPath = 256;

// kBadUtf8: non-ASCII octets that are not well-formed UTF-8 (RFC 6531 §3.3
// allows only UTF-8 in addresses).
enum class PathStatus { kOk, kSyntax, kTooLong, kNeedsUtf8, kBadUtf8 };

struct ParsedPath {
  PathStatus status = PathStatus::kSyntax;
  Address address;               // empty for <>
  bool null_path = false;        // <>
  bool bare_postmaster = false;  // <Postmaster> without a domain (RFC 5321 §4.5.1)
  std::string_view rest;         // what follows the path: the ESMTP parameters
};

// Parses "<local@domain> params" (the argument after FROM: or TO:). utf8 allows
// non-ASCII in local part and domain (RFC 6531 §3.3).
ParsedPath parse_path(std::string_view text, bool utf8);

// A domain (sub-domain *("." sub-domain)) or an address literal. utf8 admits
// U-labels. Used for envelope domains.
bool valid_domain(std::string_view domain, bool utf8);
bool valid_address_literal(std::string_view literal);
// The argument of EHLO/HELO: a domain or address literal. Underscores are
// tolerated here because many real hosts have them in their names.
bool valid_helo_domain(std::string_view domain);
// A full address "local@domain" as used in configuration and tools.
std::optional<Address> parse_address(std::string_view text, bool utf8 = true);

}  // namespace tern::smtp
