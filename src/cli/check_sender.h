// `tern check`'s look at the sender's domain as receiving servers see it:
// the SPF record (RFC 7208 §4.5), the DMARC record with the organisational-
// domain fallback (RFC 7489 §6.6.3) and, given --dkim-selector, the DKIM key
// record (RFC 6376 §3.6.1), each found / missing / wrong / unknown, with what
// it means and what to publish. Informational: it never changes the verdict.
#pragma once

#include <asio/any_io_executor.hpp>

#include "cli/check_report.h"
#include "cli/check_targets.h"
#include "net/awaitable.h"

namespace tern::cli {

// Prints the "== Sender records of DOMAIN" section and sets "sender_records"
// in the --json document. Nothing when the --from address has no domain
// name (none, or an address literal).
net::awaitable<void> report_sender_records(asio::any_io_executor ex, const CheckOptions& o,
                                           CheckReport& report);

}  // namespace tern::cli
