// What an SMTP reply means, in words an administrator can act on: the class
// of the code (RFC 5321 §4.2.1, the seed article's table), the enhanced status
// code (RFC 3463 and the IANA registry of RFC 5248), and for the replies the
// seed lists, the possible reasons for a failure and what to try next. Used by
// `tern check` and `tern talk`. No I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "smtp/reply.h"

namespace tern::smtp {

// "Success: the command completed; the server is ready for the next one." etc.
std::string_view class_meaning(int code);
// "Bad destination mailbox address" for "5.1.1"; the subject's meaning for an
// unknown detail ("Addressing status"); "" when not an enhanced code.
std::string enhanced_meaning(std::string_view enhanced);

// The step of the seed's procedure a reply answers.
enum class Step {
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

// Possible reasons for a failure at step with reply (or a connection failure
// when reply.code == 0), most likely first, and what to try next.
struct Diagnosis {
  std::vector<std::string> reasons;
  std::string next;
};
Diagnosis diagnose(Step step, const Reply& reply);

}  // namespace tern::smtp
