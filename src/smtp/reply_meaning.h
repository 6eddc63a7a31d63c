// What an SMTP reply means, in words an administrator can act on: the class
// of the code (RFC 5321 §4.2.1, the seed article's table), the basic code
// (RFC 5321 §4.2.2–4.2.3, RFC 4954), the enhanced status code (RFC 3463 and
// the IANA registry of RFC 5248), and for a failure at a step of the seed's
// procedure what it means, the possible reasons (the seed's lists first) and
// what to try next. Used by `tern check` and `tern talk`. No I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "smtp/reply.h"

namespace tern::smtp {

// "success: the command completed on the remote server, which is ready for the
// next command" etc., for 2yz, 3yz, 4yz, 5yz.
std::string_view class_meaning(int code);
// The basic reply code in words ("Service ready" for 220, "Requested action
// not taken: mailbox unavailable" for 550); "" when unknown.
std::string_view code_meaning(int code);
// "Bad destination mailbox address" for "5.1.1"; "Addressing status: OK" for
// "2.1.0"; the subject's meaning for an unknown detail ("Addressing status");
// "" when not an enhanced code.
std::string enhanced_meaning(std::string_view enhanced);

// The step of the seed's procedure a reply answers (kDns: the MX lookup
// before it, whose failures are given as replies too, e.g. 550 5.1.2).
enum class Step {
  kDns,
  kConnect,
  kGreeting,
  kEhlo,
  kStartTls,
  kAuth,
  kMail,
  kRcpt,
  kData,
  kMessage,
  kQuit
};
std::string_view step_name(Step step);

}  // namespace tern::smtp
