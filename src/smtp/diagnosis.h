// Why a step of the seed's procedure failed, for `tern check` and `tern talk`:
// what the failure means, the possible reasons (the seed's lists first, then
// what experience adds: DNS, TLS, AUTH, relay, greylisting …) and what to try
// next. No I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "smtp/reply.h"
#include "smtp/reply_meaning.h"

namespace tern::smtp {

// For a failure at step: what it means in one sentence, the possible reasons
// (most likely first) and what to try next. reply is the server's reply; when
// no reply came (reply.code == 0), error says what happened instead
// ("Connection refused", "timed out after 30 s", "connection closed",
// "not SMTP: ...").
struct Diagnosis {
  std::string meaning;
  std::vector<std::string> reasons;
  std::string next;
};
Diagnosis diagnose(Step step, const Reply& reply, std::string_view error = {});

}  // namespace tern::smtp
