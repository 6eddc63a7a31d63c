// Where mail for a domain goes (RFC 5321 §5.1, RFC 7505): the hosts to try in
// order, each with its addresses, or why there are none. Outbound delivery
// tries route.hosts in order, skipping those without addresses; `tern mx` and
// `tern check` print the same route, so what they show is what delivery does.
//
//   - MX records, lowest preference first, random order among equal ones
//     (RFC 5321 §5.1: spreads load as the domain intends);
//   - no MX records (NOERROR, no data): the domain itself is the implicit MX,
//     preference 0, with its own A/AAAA records;
//   - a null MX (a single "MX 0 .", RFC 7505 §3): the domain accepts no mail,
//     a permanent failure reported as 556 5.1.10 (RFC 7505 §4.1);
//   - NXDOMAIN: permanent; SERVFAIL, timeouts and unparsable answers: temporary.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "net/awaitable.h"
#include "smtp/reply.h"

namespace tern::dns {

// Randomness for the order among equal preferences; tests pass a seeded one.
using RandomSource = std::function<std::uint64_t()>;

enum class RouteKind {
  kMx,          // hosts from MX records
  kImplicitMx,  // no MX records: the domain's own A/AAAA (RFC 5321 §5.1)
  kNullMx,      // RFC 7505 null MX: the domain accepts no mail (permanent)
  kNoDomain,    // NXDOMAIN: the domain does not exist (permanent)
  kNoAddress,   // neither the MX hosts nor (without MX) the domain have an address (permanent)
  kTemporary,   // DNS could not answer now: try again later
};

struct RouteHost {
  std::string name;  // "" for the root of a null MX
  std::uint16_t preference = 0;
  std::uint32_t ttl = 0;                 // of the MX records; 0 for the implicit MX
  std::vector<AddressRecord> addresses;  // IPv4 first; empty: the host is skipped
  std::string note;                      // why it is skipped; empty when usable

  bool usable() const { return !addresses.empty(); }
};

struct MxRoute {
  std::string domain;  // lower case, without trailing dot
  RouteKind kind = RouteKind::kTemporary;
  std::vector<RouteHost> hosts;  // in the order to try; skipped ones kept for reports
  // Why mail cannot go now: 556 5.1.10 (null MX), 550 5.1.2 (NXDOMAIN),
  // 550 5.4.4 (no address), 451 4.4.3 (temporary). Code 0 when deliverable.
  smtp::Reply failure;
  // The DNS answer behind a temporary failure, for humans and logs:
  // "MX example.test: Timeout while contacting DNS servers".
  std::string detail;

  bool deliverable() const { return kind == RouteKind::kMx || kind == RouteKind::kImplicitMx; }
  bool temporary_failure() const { return kind == RouteKind::kTemporary; }
  bool permanent_failure() const { return !deliverable() && !temporary_failure(); }
};

// At most this many MX hosts are resolved; the rest are listed, noted, unused
// (a hostile zone must not make one delivery cost hundreds of lookups).
constexpr std::size_t kMaxMxHosts = 20;

// The route for domain ("example.test", case and trailing dot ignored).
// resolver must outlive the coroutine; random defaults to util::random_u64.
net::awaitable<MxRoute> find_mx_route(Resolver& resolver, std::string domain,
                                      RandomSource random = {});

// The pure steps, exposed for tests and for callers with records at hand:
// sorted by preference, equal preferences shuffled (Fisher–Yates per group).
std::vector<MxRecord> order_mx(std::vector<MxRecord> records, const RandomSource& random);
// A single record, preference 0, exchange the root (RFC 7505 §3).
bool is_null_mx(const std::vector<MxRecord>& records);
// "mx", "implicit_mx", "null_mx", "nxdomain", "no_address", "temporary".
std::string_view route_kind_name(RouteKind kind);

}  // namespace tern::dns
