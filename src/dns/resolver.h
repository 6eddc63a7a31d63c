// The DNS questions mail routing asks, behind a small interface (DESIGN.md
// principle 4): MX records of a domain (RFC 5321 §5.1) and the A/AAAA
// addresses of a host. resolver_cares.h answers them with c-ares; unit tests
// inject a fake. Every failure is typed, because the caller must tell a
// permanent answer (the name does not exist) from a temporary one (the
// server did not answer) — RFC 5321 §4.5.4.1, RFC 2308.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/awaitable.h"

namespace tern::dns {

struct MxRecord {
  std::string host;  // the exchange, without trailing dot; "" for the root (null MX)
  std::uint16_t preference = 0;
  std::uint32_t ttl = 0;  // seconds (RFC 2181 §5.2: the lowest TTL of the RRset)

  bool operator==(const MxRecord&) const = default;
};

struct AddressRecord {
  std::string address;  // textual: "192.0.2.1", "2001:db8::1"
  std::uint32_t ttl = 0;
  bool v6 = false;  // AAAA rather than A

  bool operator==(const AddressRecord&) const = default;
};

enum class DnsError {
  kNone,       // success: records is not empty
  kNoData,     // the name exists but has no records of this type (RFC 2308 §2.2)
  kNxDomain,   // the name does not exist (RFC 2308 §2.1): permanent
  kTemporary,  // SERVFAIL, REFUSED, timeout, no server reachable: try again later
  kMalformed,  // the answer could not be parsed: treat as temporary
};

// "no data", "NXDOMAIN", "temporary failure", "malformed answer".
constexpr std::string_view dns_error_name(DnsError e) {
  switch (e) {
    case DnsError::kNone:
      return "ok";
    case DnsError::kNoData:
      return "no data";
    case DnsError::kNxDomain:
      return "NXDOMAIN";
    case DnsError::kTemporary:
      return "temporary failure";
    case DnsError::kMalformed:
      return "malformed answer";
  }
  return "unknown";
}

// Whether a later retry may get a different answer (kTemporary, kMalformed).
constexpr bool is_temporary(DnsError e) {
  return e == DnsError::kTemporary || e == DnsError::kMalformed;
}

// The answer to one question: records, or an error kind with a message for
// humans: the question and what went wrong ("MX example.test: Server failure").
template <typename Record>
struct DnsResult {
  std::vector<Record> records;
  DnsError error = DnsError::kNone;
  std::string message;
  // For kNxDomain and kNoData: how long the answer may be cached (RFC 2308
  // §5: the lower of the SOA record's TTL and its MINIMUM field); 0 when the
  // server sent no SOA, and the cache picks its default.
  std::uint32_t negative_ttl = 0;

  bool ok() const { return error == DnsError::kNone; }
  static DnsResult failure(DnsError kind, std::string text) {
    DnsResult r;
    r.error = kind;
    r.message = std::move(text);
    return r;
  }
};

// One TXT record: its character-strings concatenated without separator
// (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
struct TxtRecord {
  std::string text;
  std::uint32_t ttl = 0;

  bool operator==(const TxtRecord&) const = default;
};

using MxResult = DnsResult<MxRecord>;
using TxtResult = DnsResult<TxtRecord>;
using AddressResult = DnsResult<AddressRecord>;

// A resolver lives on one event loop; its coroutines must be awaited there.
// Names are given without trailing dot; they are queried as they are (no
// search list: mail domains are always fully qualified, RFC 5321 §2.3.5).
class Resolver {
 public:
  virtual ~Resolver() = default;
  // The MX RRset of domain, in the order the server gave it (unsorted).
  virtual net::awaitable<MxResult> mx(std::string domain) = 0;
  // The A and AAAA records of host (CNAMEs followed): IPv4 first, then IPv6.
  // Succeeds if either family has records; kNoData only if both have none.
  virtual net::awaitable<AddressResult> addresses(std::string host) = 0;
  // The TXT records of name (SPF, DKIM keys, DMARC policies).
  virtual net::awaitable<TxtResult> txt(std::string name) {
    co_return TxtResult::failure(DnsError::kTemporary, "TXT " + name + ": not supported");
  }
};

}  // namespace tern::dns
