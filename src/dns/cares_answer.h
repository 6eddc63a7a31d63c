// Turns what c-ares hands a query callback (a status and the raw answer, RFC
// 1035 §4.1) into typed results: MX, TXT records with the TTL of their RRset,
// A and AAAA records with theirs, the negative-caching TTL of NXDOMAIN and
// NODATA answers (RFC 2308 §5), and c-ares status codes into DnsError kinds.
// No I/O: resolver_cares.cpp feeds it, unit tests feed it crafted answers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dns/resolver.h"

namespace tern::dns {

// A finished c-ares query: its status (ARES_SUCCESS, ARES_ENODATA, …) and,
// when the server answered, the answer message.
struct RawAnswer {
  int status = 0;
  std::vector<unsigned char> message;
};

// The kind of failure an ares status stands for: NXDOMAIN is ARES_ENOTFOUND,
// NOERROR without answers ARES_ENODATA, an unparsable answer ARES_EBADRESP;
// everything else (SERVFAIL, REFUSED, timeout, refused connection, channel
// destroyed) is temporary. A name c-ares cannot encode counts as NXDOMAIN.
DnsError classify_status(int status);

// The lowest TTL among the answer-section records of this type (RFC 2181
// §5.2), or nothing if there is none or the message is cut short.
std::optional<std::uint32_t> rrset_ttl(const std::vector<unsigned char>& message, int type);

// The negative-caching TTL of an answer without records (RFC 2308 §5): the
// lower of the TTL and the MINIMUM field of the authority section's SOA
// record, or nothing if there is no SOA or the message is cut short.
std::optional<std::uint32_t> negative_ttl(const std::vector<unsigned char>& message);

// The most text one TXT answer may carry, all records together: a DNS message
// over TCP cannot hold more (RFC 1035 §4.2.2), so a larger total is a broken
// answer (kMalformed), never an allocation without bound.
constexpr std::size_t kMaxTxtAnswer = 65535;

// what: the question for messages, e.g. "MX example.test".
MxResult parse_mx(const RawAnswer& answer, std::string_view what);
// Each TXT record's character-strings concatenated without separator (RFC
// 7208 §3.3, RFC 6376 §3.6.2.2), records in the order of the answer.
TxtResult parse_txt(const RawAnswer& answer, std::string_view what);
AddressResult parse_a(const RawAnswer& answer, std::string_view what);
AddressResult parse_aaaa(const RawAnswer& answer, std::string_view what);

// One result from the A and AAAA answers of the same host: records if either
// has some (IPv4 first); else NXDOMAIN if either says so (the name does not
// exist, whatever the type), else a temporary failure if either had one, else
// no data.
AddressResult merge_addresses(AddressResult v4, AddressResult v6);

}  // namespace tern::dns
