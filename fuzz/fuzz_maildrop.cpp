// libFuzzer target: a drop file in sendmail's maildrop, which any local user
// may write, read by tern serve's pickup (maildrop::decode).
//
// Findings (abort): a file decode() accepts whose recipients are over the
// bound or empty, whose message has text bad_message_text() refuses or no end
// of its header section, or that does not come back the same through
// encode() and decode() again (what the pickup queues is what was checked).
#include <cstdint>
#include <string>
#include <string_view>

#include "checks.h"
#include "queue/maildrop.h"

namespace md = tern::maildrop;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    md::Submission s;
    try {
      s = md::decode(text, 64 * 1024);
    } catch (const md::BadDropFile&) {
      return 0;
    }
    if (s.recipients.empty() || s.recipients.size() > md::kMaxRecipients)
      tern::fuzz::finding("%zu recipients accepted", s.recipients.size());
    if (auto why = md::bad_message_text(s.message))
      tern::fuzz::finding("a message accepted with %s", why->c_str());
    if (s.message.rfind("\r\n", 0) != 0 && s.message.find("\r\n\r\n") == std::string::npos)
      tern::fuzz::finding("a message with no end of its header section accepted");
    md::Submission again;
    try {
      again = md::decode(md::encode(s), 64 * 1024);
    } catch (const md::BadDropFile& e) {
      tern::fuzz::finding("encode() of an accepted file is refused: %s", e.what());
    }
    if (again.sender != s.sender || again.full_name != s.full_name ||
        again.recipients != s.recipients || again.message != s.message ||
        again.notify != s.notify || again.ret != s.ret || again.envid != s.envid)
      tern::fuzz::finding("encode() and decode() changed the submission");
  } catch (const tern::fuzz::IgnoredFinding&) {
  }
  return 0;
}
