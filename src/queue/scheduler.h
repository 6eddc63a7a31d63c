// The queue scheduler (SPEC §4): knows when each queued message is due, starts
// its delivery attempt when it is — in one of two lanes: a message whose
// pending recipients are all local (Maildir, LMTP) in the local lane, at most
// [delivery] max_local_deliveries at once; any other in the remote lane, at
// most max_connections at once, so slow remote hosts never hold local mail back —
// and records the outcomes (queue/attempt.h) as each group of recipients ends
// (delivery/deliverer.h): the whole envelope and the notices due for that
// group in one spool change, so a crash never delivers a finished group again;
// the last group's write also carries the next attempt, the delay notice or
// the removal (a message with only Maildir recipients costs one write). A
// write that fails is kept in memory and tried again with backoff; the
// message is not delivered again until it is written. State that matters is
// in the spool (next_attempt, recipient states), so a restart resumes where it
// was: load() rebuilds the in-memory index.
//
// Runs on the delivery event loop. enqueue() may be called from any thread
// (ids are batched: one post takes all that came meanwhile); the administrator's
// actions (retry, delete, bounce: scheduler_admin.cpp) come through the control
// socket on the same loop. An attempt and an administrator's action never run on the same message
// at once: each owns the entry before its first suspension. Work that is due
// now is started by a coalesced post, never through the timer; the timer waits
// only for the earliest future due time of a lane with room and is re-armed
// only when that time moves earlier (each re-arm is a timerfd_settime(2),
// costly on a busy loop).
//
// On a shared spool (PostgreSQL, SPEC §6) the queue is the cluster's: the
// scheduler indexes only the messages its node has leased. It claims due
// messages (Spool::claim) as far as its lanes have room, when told that mail
// was queued (enqueue, the spool's notification, a notice it made) and every
// few seconds, since notifications can be lost; it releases each message when
// its attempt ends, so the next attempt may run on any node.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/config.h"
#include "delivery/deliverer.h"
#include "log/metrics.h"
#include "log/tracking_log.h"
#include "net/awaitable.h"
#include "queue/attempt.h"
#include "queue/spool.h"

namespace tern::queue {

class Scheduler {
 public:
  using Clock = std::function<std::int64_t()>;  // Unix milliseconds

  Scheduler(asio::any_io_executor executor, const config::Config& config, Spool& spool,
            log::TrackingLog& tracking, delivery::Deliverer& deliverer, Clock clock = {});

  // Reads the spool and schedules every message with recipients left. Call
  // before the loop runs (blocking).
  std::size_t load();
  // Starts the timer; call from the loop or before it runs.
  void start();
  // A new message is in the spool, due now. Any thread. local: every
  // recipient is local (saves reading the envelope back); unknown: read.
  void enqueue(std::uint64_t id, std::optional<bool> local = std::nullopt);

  // Administrator's actions; the reply is one line for `tern queue`.
  // retry releases a held message; nullopt: every scheduled message (held ones stay held).
  net::awaitable<std::string> retry(std::optional<std::uint64_t> id);
  net::awaitable<std::string> remove(std::uint64_t id);
  net::awaitable<std::string> bounce(std::uint64_t id);

  // No new attempts; on_idle runs (on the loop) once no attempt is running.
  // Outcomes whose write failed are handed to the spool once more.
  void stop(std::function<void()> on_idle);
  std::size_t running() const { return running_; }
  // The queue this scheduler indexes, by state (tern_queue_messages); on the
  // loop. Counts the due entries of the smaller side of now, so a scrape of a
  // large queue costs the loop little.
  log::QueueCounts queue_counts() const;
  // Looks at the due messages again now (after the clock moved, in tests).
  void wake() { timer_.cancel(); }

 private:
  static std::string held_reason(std::uint64_t id, const std::string& what);

  // Outcomes known but not yet in the spool (a write failed): written again
  // with backoff before the message is delivered again.
  struct Unwritten {
    Envelope envelope;    // the newest state
    bool update = false;  // envelope is to be written
    bool remove = false;  // the message is to be removed
    std::vector<NewMessage> add;
    std::vector<TrackingRecord> tracking;
    std::vector<std::uint64_t> new_messages;
    bool finished = false;
    bool held = false;
    std::int64_t next_attempt_ms = 0;
    std::uint32_t failures = 1;
  };
  struct Entry {
    std::int64_t due = 0;
    bool running = false;        // an attempt or an administrator's action owns it
    bool local = false;          // every pending recipient is local: the local lane
    bool running_local = false;  // the lane of the running attempt
    // Accepted or created by this process (enqueue, a notice made here, not
    // load()) and no attempt started yet: nothing can have been delivered.
    bool fresh = false;
    enum class After { kNothing, kRetry, kDelete, kBounce } after = After::kNothing;
    std::shared_ptr<Unwritten> unwritten;
    std::uint32_t unavailable = 0;  // attempts in a row that found the spool unreadable
  };
  struct Recording;  // one attempt's state while its groups end (scheduler.cpp)
  struct Batch;      // one write of an attempt
  struct Ended {
    bool gone = false;  // finished or held: no longer scheduled
    std::int64_t next_ms = 0;
  };

  // What the attempt path calls when a slot frees or an entry leaves
  // (timer_.cancel()): one look at the queue soon; the timer is not touched.
  struct LookAgain {
    Scheduler* owner;
    void cancel() { owner->look_again(); }
  };

  // fresh: the message is new in this process (Entry::fresh), when created.
  void schedule(std::uint64_t id, std::int64_t due, bool fresh = false,
                std::optional<bool> local = std::nullopt);
  void take_incoming();
  void look_again();  // look_now() soon, once for every call made before it runs
  void look_now();    // start_due(), then arm() for what is due later
  // Shared spool: there may be due messages to claim; claim_more() asks the
  // spool for as many as the lanes have room for, one claim at a time.
  void signal_due();
  void claim_more();
  void claimed(std::vector<Claim> got, std::size_t local, std::size_t remote);
  void poll();
  // The entry leaves this node's index (shared spool: its lease is released).
  void forget(std::uint64_t id);
  void arm(std::int64_t now);
  void start_due();
  std::optional<std::pair<std::uint64_t, bool>> next_due(std::int64_t now);  // (id, local lane)
  std::set<std::pair<std::int64_t, std::uint64_t>>& due_of(const Entry& e) {
    return e.local ? due_local_ : due_;
  }
  net::awaitable<void> attempt(std::uint64_t id);
  net::awaitable<Ended> attempt_once(std::uint64_t id);
  net::awaitable<Ended> rewrite(std::uint64_t id, std::shared_ptr<Unwritten> unwritten);
  void on_group(const std::shared_ptr<Recording>& rec,
                std::vector<delivery::RecipientOutcome> outcomes, bool last);
  AttemptResult conclude(Recording& rec, const std::vector<delivery::RecipientOutcome>& outcomes,
                         bool expired);
  void submit(const std::shared_ptr<Recording>& rec, AttemptResult result, bool final);
  void written(Recording& rec, Batch& batch, const CommitResult& result);
  net::awaitable<void> all_written(Recording& rec);
  std::shared_ptr<Unwritten> unwritten_of(Recording& rec);
  // Throws SpoolUnavailable when the spool cannot be read now.
  net::awaitable<bool> hold(std::uint64_t id, std::string reason);
  // The spool cannot be read now: the message is tried again later, with
  // backoff (neither held nor dropped), and the spool is asked to reopen.
  net::awaitable<Ended> spool_unavailable(std::uint64_t id, const std::string& why);
  void write_tracking(const Envelope& envelope, const std::vector<TrackingRecord>& tracking);
  void finish_attempt(std::uint64_t id, const Ended& ended);
  // The administrator's actions own the message from before their first
  // suspension to their end (claim … release), so no attempt starts meanwhile.
  void claim(std::uint64_t id);
  void release(std::uint64_t id, bool removed);
  // delete or bounce: done now on a message it owns (act), or by the running
  // attempt's last write.
  net::awaitable<std::string> act(std::uint64_t id, Entry::After what);
  // The action on a message claimed already; released when it ends.
  net::awaitable<std::string> owned(std::uint64_t id, Entry::After what);
  // What act does while it owns the message; removed: the message is gone.
  net::awaitable<std::string> remove_owned(std::uint64_t id, bool& removed);
  net::awaitable<std::string> bounce_owned(std::uint64_t id, bool& removed);
  std::string busy(std::uint64_t id) const;
  // At shutdown: outcomes whose write failed go to the spool once more.
  void hand_back(std::uint64_t id, const Unwritten& unwritten);

  asio::any_io_executor executor_;
  const config::Config& config_;
  Spool& spool_;
  log::TrackingLog& tracking_;
  delivery::Deliverer& deliverer_;
  Clock clock_;
  AttemptRecorder recorder_;
  LookAgain timer_{this};
  asio::steady_timer due_timer_;
  static constexpr std::int64_t kNotArmed = std::numeric_limits<std::int64_t>::max();
  std::int64_t armed_ms_ = kNotArmed;  // when due_timer_ fires (clock ms)
  bool look_pending_ = false;
  std::mutex incoming_mutex_;
  std::vector<std::pair<std::uint64_t, std::optional<bool>>> incoming_;  // enqueued, not yet taken
  std::unordered_map<std::uint64_t, Entry> entries_;
  // (due, id) of entries not running, by lane
  std::set<std::pair<std::int64_t, std::uint64_t>> due_, due_local_;
  std::unordered_set<std::uint64_t> admin_;  // ids an administrator's action owns
  // Held messages, not scheduled (true: quarantined, its record does not
  // decode), for queue_counts(); they leave when released or removed.
  std::unordered_map<std::uint64_t, bool> held_;
  std::size_t running_ = 0;
  std::size_t running_local_ = 0;
  bool stopped_ = false;
  std::function<void()> on_idle_;
  // Shared spool
  const bool shared_;
  bool claiming_ = false;        // a claim is on its way
  bool more_due_local_ = false;  // there may be due messages to claim, by lane
  bool more_due_remote_ = false;
  asio::steady_timer poll_timer_;
};

}  // namespace tern::queue
