// Delivery status notifications (RFC 3464 multipart/report, RFC 3461 rules),
// composed as a new message from the null sender <> to the original sender.
//
// Which notices are due (RFC 3461 §4.1, §6.2):
//   failed    — unless NOTIFY=NEVER, or NOTIFY was given without FAILURE;
//   delayed   — when NOTIFY includes DELAY, or no NOTIFY was given (tern's
//               default, like Postfix), once per recipient;
//   delivered — only with NOTIFY=SUCCESS; relayed — NOTIFY=SUCCESS and the next
//               hop lacks DSN.
// Never for a message whose sender is <> (no bounce loops, RFC 3461 §6.2).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/envelope.h"

namespace tern::queue {

enum class DsnAction { kFailed, kDelayed, kDelivered, kRelayed };
std::string_view action_name(DsnAction action);  // "failed", "delayed", ...

// Whether a notice of this kind is wanted for this recipient.
bool dsn_wanted(const Envelope& envelope, const Recipient& recipient, DsnAction action);

struct DsnRecipient {
  std::size_t index = 0;  // into the original envelope's recipients
  DsnAction action = DsnAction::kFailed;
  std::string status;      // enhanced status code, "5.1.1"
  std::string diagnostic;  // the reply: "550 5.1.1 User unknown" (as received)
  std::string remote_mta;  // "mx1.example.test" when a remote host answered
  std::int64_t last_attempt_ms = 0;
  std::int64_t will_retry_until_ms = 0;  // for delayed: arrival + expire
};

struct DsnRequest {
  const Envelope* original = nullptr;
  std::string_view original_content;  // the spooled message, CR LF line ends
  std::vector<DsnRecipient> recipients;
  std::string reporting_mta;  // our hostname
  std::int64_t now_ms = 0;
  // Messages larger than this are returned as headers only even with RET=FULL
  // (RFC 3461 §4.3 lets the MTA truncate).
  std::size_t max_returned = 10 * 1024 * 1024;
};

struct Dsn {
  std::string recipient;   // the original sender
  std::string message_id;  // "<...@reporting_mta>"
  std::string content;     // the whole notice, CR LF line ends
};

// The notice for the recipients of request whose action is wanted, or nullopt
// when none is (all filtered by NOTIFY, or the original sender is <>). One
// notice covers every recipient passed in; callers group by action.
std::optional<Dsn> compose_dsn(const DsnRequest& request);

}  // namespace tern::queue
