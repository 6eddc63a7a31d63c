// The delivery route of a domain from its MX records; see mx_route.h.
#include "dns/mx_route.h"

#include <algorithm>

#include "util/random.h"
#include "util/text.h"

namespace tern::dns {

namespace {

std::string normalize(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  return util::to_lower(domain);
}

MxRoute failed(MxRoute route, RouteKind kind, smtp::Reply reply) {
  route.kind = kind;
  route.failure = std::move(reply);
  return route;
}

MxRoute temporary(MxRoute route, std::string why) {
  std::string text = "Temporary DNS failure for " + route.domain + ": " + why;
  route.detail = std::move(why);
  return failed(std::move(route), RouteKind::kTemporary, smtp::Reply(451, "4.4.3", text));
}

MxRoute no_domain(MxRoute route) {
  std::string text = "Domain " + route.domain + " does not exist (NXDOMAIN)";
  return failed(std::move(route), RouteKind::kNoDomain, smtp::Reply(550, "5.1.2", text));
}

// Why a host's lookup gave no address, for RouteHost::note.
std::string address_note(const AddressResult& result) {
  switch (result.error) {
    case DnsError::kNone:
    case DnsError::kNoData:
      return "no A/AAAA records";
    case DnsError::kNxDomain:
      return "host does not exist (NXDOMAIN)";
    default:
      return std::string(dns_error_name(result.error)) + ": " + result.message;
  }
}

// No MX records: the domain itself, preference 0 (RFC 5321 §5.1).
net::awaitable<MxRoute> implicit_mx(Resolver& resolver, MxRoute route) {
  AddressResult addresses = co_await resolver.addresses(route.domain);
  if (addresses.ok() && !addresses.records.empty()) {
    route.kind = RouteKind::kImplicitMx;
    route.hosts.push_back({route.domain, 0, 0, std::move(addresses.records), ""});
    co_return route;
  }
  if (addresses.error == DnsError::kNxDomain) co_return no_domain(std::move(route));
  if (is_temporary(addresses.error)) co_return temporary(std::move(route), addresses.message);
  std::string text = "Domain " + route.domain + " has no MX and no A/AAAA records";
  co_return failed(std::move(route), RouteKind::kNoAddress, smtp::Reply(550, "5.4.4", text));
}

}  // namespace

std::vector<MxRecord> order_mx(std::vector<MxRecord> records, const RandomSource& random) {
  std::stable_sort(records.begin(), records.end(), [](const MxRecord& a, const MxRecord& b) {
    return a.preference < b.preference;
  });
  for (auto first = records.begin(); first != records.end();) {
    auto last = std::find_if(first, records.end(),
                             [&](const MxRecord& r) { return r.preference != first->preference; });
    for (auto n = static_cast<std::uint64_t>(last - first); n > 1; --n) {
      std::iter_swap(first + static_cast<std::ptrdiff_t>(n - 1),
                     first + static_cast<std::ptrdiff_t>(random() % n));
    }
    first = last;
  }
  return records;
}

bool is_null_mx(const std::vector<MxRecord>& records) {
  return records.size() == 1 && records[0].preference == 0 &&
         (records[0].host.empty() || records[0].host == ".");
}

std::string_view route_kind_name(RouteKind kind) {
  switch (kind) {
    case RouteKind::kMx:
      return "mx";
    case RouteKind::kImplicitMx:
      return "implicit_mx";
    case RouteKind::kNullMx:
      return "null_mx";
    case RouteKind::kNoDomain:
      return "nxdomain";
    case RouteKind::kNoAddress:
      return "no_address";
    case RouteKind::kTemporary:
      return "temporary";
  }
  return "unknown";
}

net::awaitable<MxRoute> find_mx_route(Resolver& resolver, std::string domain, RandomSource random) {
  if (!random) random = util::random_u64;
  MxRoute route;
  route.domain = normalize(domain);

  MxResult mx = co_await resolver.mx(route.domain);
  if (mx.error == DnsError::kNxDomain) co_return no_domain(std::move(route));
  if (is_temporary(mx.error)) co_return temporary(std::move(route), mx.message);
  if (mx.error == DnsError::kNoData || mx.records.empty())
    co_return co_await implicit_mx(resolver, std::move(route));

  if (is_null_mx(mx.records)) {
    route.hosts.push_back(
        {"", 0, mx.records[0].ttl, {}, "null MX: the domain accepts no mail (RFC 7505)"});
    std::string text =
        "Recipient domain " + route.domain + " has a null MX: it accepts no mail (RFC 7505)";
    co_return failed(std::move(route), RouteKind::kNullMx, smtp::Reply(556, "5.1.10", text));
  }

  bool any_temporary = false;
  std::vector<std::string> seen;
  for (auto& record : order_mx(std::move(mx.records), random)) {
    RouteHost host{normalize(record.host), record.preference, record.ttl, {}, ""};
    if (host.name.empty()) {
      host.note = "MX to the root name (.) among other MX records: ignored (RFC 7505 §3)";
    } else if (std::find(seen.begin(), seen.end(), host.name) != seen.end()) {
      host.note = "already listed with a more preferred MX record";
    } else if (seen.size() >= kMaxMxHosts) {
      host.note = "not looked up: more than " + std::to_string(kMaxMxHosts) + " MX hosts";
    } else {
      seen.push_back(host.name);
      AddressResult addresses = co_await resolver.addresses(host.name);
      if (addresses.ok() && !addresses.records.empty()) {
        host.addresses = std::move(addresses.records);
      } else {
        any_temporary = any_temporary || is_temporary(addresses.error);
        host.note = address_note(addresses);
      }
    }
    route.hosts.push_back(std::move(host));
  }

  if (std::any_of(route.hosts.begin(), route.hosts.end(),
                  [](const RouteHost& h) { return h.usable(); })) {
    route.kind = RouteKind::kMx;
    co_return route;
  }
  if (any_temporary)
    co_return temporary(std::move(route), "no address of a mail exchanger could be looked up");
  std::string text = "No mail exchanger of " + route.domain + " has an address";
  co_return failed(std::move(route), RouteKind::kNoAddress, smtp::Reply(550, "5.4.4", text));
}

}  // namespace tern::dns
