// libFuzzer target: what a stranger's message and a stranger's DNS can do to
// DKIM verification, the whole path (RFC 6376 §6): the header section split
// into fields (bare CRs included), every DKIM-Signature's tag list, the body
// canonicalised and hashed in pieces of any size, the key record of the
// stranger's own domain parsed and used.
//
// Input:  C message "\0" key-record
//   C  the size of each body piece: (C + 1) × 7 octets;
//   message: header section, empty line, body (anything at all);
//   key-record: the TXT answer every "<s>._domainkey.<d>" lookup gets
//      (empty: NXDOMAIN).
//
// Findings (abort): a result outside RFC 8601's dkim words; more results
// than signatures found; a crash, leak or undefined behaviour (sanitizers).
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/dkim_verify.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t piece = (static_cast<std::size_t>(data[0]) + 1) * 7;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t nul = rest.find('\0');
  std::string_view message = rest.substr(0, nul);
  std::string key = nul == std::string_view::npos ? "" : std::string(rest.substr(nul + 1));
  std::size_t end = message.find("\r\n\r\n");
  std::string_view headers = end == std::string_view::npos ? message : message.substr(0, end + 2);
  std::string_view body = end == std::string_view::npos ? "" : message.substr(end + 4);

  tern::auth::DkimVerifier verifier(1'800'000'000);
  verifier.headers(headers);
  for (std::size_t pos = 0; pos < body.size(); pos += piece) verifier.body(body.substr(pos, piece));
  // Field names are case-insensitive: an upper bound of the signatures there.
  std::string lower(message);
  for (auto& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  std::size_t signatures = 0;
  for (std::size_t p = 0; (p = lower.find("dkim-signature", p)) != std::string::npos; ++p)
    ++signatures;
  auto results = verifier.finish_with([&key](const std::string& name) {
    if (key.empty())
      return tern::dns::TxtResult::failure(tern::dns::DnsError::kNxDomain, "TXT " + name);
    tern::dns::TxtResult r;
    r.records.push_back({key, 300});
    return r;
  });
  if (results.size() > signatures) __builtin_trap();
  for (const auto& r : results) {
    const std::string& w = r.result;
    if (w != "pass" && w != "fail" && w != "neutral" && w != "policy" && w != "temperror" &&
        w != "permerror")
      __builtin_trap();
  }
  return 0;
}
