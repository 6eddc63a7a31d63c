// libFuzzer target: command lines as a client may send them — the line
// splitter, the verb table, paths and ESMTP parameters. Besides "no crash, no
// sanitizer report" it checks that every accepted address prints back to a
// path that parses to the same address.
#include <cstdint>
#include <cstring>
#include <string>

#include "smtp/address.h"
#include "smtp/command.h"
#include "smtp/input_buffer.h"
#include "smtp/params.h"
#include "util/text.h"

using namespace tern::smtp;

namespace {

void check_path(std::string_view text, bool utf8) {
  auto p = parse_path(text, utf8);
  if (p.status != PathStatus::kOk || p.null_path || p.bare_postmaster) return;
  std::string again = "<" + p.address.str() + ">";
  auto q = parse_path(again, utf8);
  if (q.status != PathStatus::kOk || q.address.str() != p.address.str()) __builtin_trap();
  if (p.address.local.size() > kMaxLocalPart || p.address.domain.size() > kMaxDomain)
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  InputBuffer in;
  std::memcpy(in.prepare(size + 1), data, size);
  in.commit(size);
  for (int guard = 0; guard < 10000; ++guard) {
    auto line = in.next_line(kMaxBufferedLine);
    if (line.status == InputBuffer::LineStatus::kNeedMore) break;
    if (line.status == InputBuffer::LineStatus::kTooLong) continue;
    auto cmd = parse_command(line.line);
    switch (cmd.verb) {
      case Verb::kMail:
        if (tern::util::istarts_with(cmd.argument, "FROM:")) {
          check_path(cmd.argument.substr(5), false);
          check_path(cmd.argument.substr(5), true);
          auto p = parse_path(cmd.argument.substr(5), true);
          (void)parse_mail_params(p.rest, true);
        }
        break;
      case Verb::kRcpt:
        if (tern::util::istarts_with(cmd.argument, "TO:")) {
          check_path(cmd.argument.substr(3), true);
          (void)parse_rcpt_params(parse_path(cmd.argument.substr(3), true).rest);
        }
        break;
      case Verb::kEhlo:
      case Verb::kHelo:
        (void)valid_helo_domain(cmd.argument);
        break;
      default:
        if (auto decoded = xtext_decode(cmd.argument)) {
          if (xtext_decode(xtext_encode(*decoded)) != decoded) __builtin_trap();
        }
    }
  }
  return 0;
}
