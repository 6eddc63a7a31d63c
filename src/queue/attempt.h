// What one delivery attempt changes in the queue (SPEC §4): each recipient's
// state from its outcome (delivered, deferred with the next retry, failed),
// expiry after [queue] expire, the delay notice after [queue] delay_notice,
// and the DSNs that are due (queue/dsn.h) as new messages for the spool. The
// scheduler writes one group's outcomes (record_group) as soon as the group
// ends, and the last group with the rest (record: next attempt, delay notice,
// removal) in one atomic spool change. No I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "delivery/outcome.h"
#include "queue/dsn.h"
#include "queue/envelope.h"
#include "queue/retry_schedule.h"
#include "queue/spool.h"

namespace tern::queue {

// One line for the message tracking log (SPEC §5).
struct TrackingRecord {
  std::string event;  // DELIVER, SEND, DEFER, FAIL, DSN
  std::uint64_t id = 0;
  std::string recipient;
  std::string remote;
  std::string detail;
};

struct AttemptResult {
  SpoolChange change;  // update or remove the message, add the DSNs
  std::vector<TrackingRecord> tracking;
  std::vector<std::uint64_t> new_messages;  // DSN ids, to schedule
  bool finished = false;                    // no recipient left to try
  std::int64_t next_attempt_ms = 0;         // when not finished
  bool held = false;                        // tern failed inside: held, not rescheduled
};

class AttemptRecorder {
 public:
  AttemptRecorder(const config::Config& config, Spool& spool)
      : config_(config), spool_(spool), schedule_(config.queue) {}

  // Applies outcomes to envelope (a copy the caller owns) and builds the result.
  AttemptResult record(Envelope& envelope, std::string_view content,
                       const std::vector<delivery::RecipientOutcome>& outcomes,
                       std::int64_t now_ms);
  // One group's outcomes while others still run: recipient states and the
  // failure and success notices due for them; change holds only those notices
  // (the caller writes them with the whole envelope). record() ends the attempt.
  AttemptResult record_group(Envelope& envelope, std::string_view content,
                             const std::vector<delivery::RecipientOutcome>& outcomes,
                             std::int64_t now_ms);
  // Fails every pending recipient with reply (expiry, `tern queue bounce`).
  AttemptResult fail_pending(Envelope& envelope, std::string_view content, const smtp::Reply& reply,
                             std::int64_t now_ms);
  bool expired(const Envelope& envelope, std::int64_t now_ms) const {
    return schedule_.expired(envelope.arrival_ms, now_ms);
  }

 private:
  void apply(Envelope& envelope, const std::vector<delivery::RecipientOutcome>& outcomes,
             std::int64_t now_ms, std::vector<DsnRecipient>& failed,
             std::vector<DsnRecipient>& success, AttemptResult& result);
  AttemptResult finish(Envelope& envelope, std::string_view content,
                       std::vector<DsnRecipient> failed, std::vector<DsnRecipient> success,
                       std::int64_t now_ms, AttemptResult result);
  void add_dsn(const Envelope& envelope, std::string_view content,
               std::vector<DsnRecipient> recipients, std::int64_t now_ms, AttemptResult& result);

  const config::Config& config_;
  Spool& spool_;
  RetrySchedule schedule_;
};

}  // namespace tern::queue
