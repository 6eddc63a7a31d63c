// libFuzzer target: what any local user can send to the admin listener. The
// bytes go through admin::RequestParser exactly as AdminServer reads them
// (pieces of a size the first byte picks, the unused rest fed again after
// each request), every complete request's target through parse_target.
//
// Input:  P bytes…   P: a read brings at most (P + 1) × 16 octets.
//
// Findings (abort): a request whose body is over the bound or whose head (the
// request line and header fields) is over the bound without kHeadTooLarge; a
// parser that uses more bytes than it was given, or none while incomplete and
// given some; a target parse_target accepts with an empty, "." or ".."
// segment, or a segment holding '/' or NUL (a path trick reaching a route).
#include <cstdint>
#include <string>
#include <string_view>

#include "admin/http.h"
#include "checks.h"

namespace {

constexpr std::size_t kMaxHead = 16 * 1024;
constexpr std::size_t kMaxBody = 64 * 1024;

void check_target(const std::string& target) {
  auto parsed = tern::admin::parse_target(target);
  if (!parsed) return;
  for (const auto& s : parsed->segments)
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos ||
        s.find('\0') != std::string::npos)
      tern::fuzz::finding("parse_target kept the segment \"%s\" of %s", s.c_str(), target.c_str());
  for (const auto& [key, value] : parsed->query)
    if (key.find('\0') != std::string::npos || value.find('\0') != std::string::npos)
      tern::fuzz::finding("a NUL in a decoded query parameter of %s", target.c_str());
}

void check_request(const tern::admin::Request& r) {
  if (r.body.size() > kMaxBody) tern::fuzz::finding("a body of %zu octets", r.body.size());
  std::size_t head = r.method.size() + r.target.size();
  for (const auto& [name, value] : r.headers) head += name.size() + value.size();
  if (head > kMaxHead) tern::fuzz::finding("a head of %zu octets was accepted", head);
  check_target(r.target);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    if (size < 1) return 0;
    const std::size_t piece = (static_cast<std::size_t>(data[0]) + 1) * 16;
    std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    tern::admin::RequestParser parser(kMaxHead, kMaxBody);
    std::string pending;  // read but not used yet, as the server keeps it
    while (!bytes.empty() || !pending.empty()) {
      if (!bytes.empty()) {
        auto n = std::min(piece, bytes.size());
        pending.append(bytes.substr(0, n));
        bytes.remove_prefix(n);
      }
      auto [status, used] = parser.feed(pending);
      if (used > pending.size())
        tern::fuzz::finding("used %zu of %zu octets", used, pending.size());
      pending.erase(0, used);
      using Status = tern::admin::RequestParser::Status;
      if (status == Status::kComplete) {
        check_request(parser.take());
        continue;
      }
      if (status != Status::kIncomplete) break;  // 400/413/431 and close
      if (bytes.empty()) break;                  // the peer sent no more
    }
  } catch (const tern::fuzz::IgnoredFinding&) {
  }
  return 0;
}
