// The spool: where accepted messages live until every recipient is done.
//
// Contract: commit() calls its callback with kOk only once the envelope and the
// whole message are on stable storage (SPEC §4: 250 after DATA comes after the
// sync). Commits from concurrent sessions share one sync (group commit). The
// callback runs on a spool thread; callers hop back to their own executor.
// Everything else may block and must not be called from an event loop.
//
// Backends: spool_rocksdb (the embedded default), spool_memory (unit tests);
// a PostgreSQL backend shares one queue between nodes (SPEC §6).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "log/metrics.h"
#include "queue/envelope.h"
#include "queue/trail.h"

namespace tern::queue {

enum class SpoolStatus { kOk, kNoSpace, kError };

struct CommitResult {
  SpoolStatus status = SpoolStatus::kOk;
  std::string error;  // for logs; never shown to clients
};

// A message ready to be made durable. The stored content is prefix + content:
// the prefix holds the headers tern adds (Received:, Message-ID:), so a large
// body is never copied to prepend them.
// A large message streams into the spool while it arrives (store_part), so
// that memory per connection stays bounded: then the stored content is prefix
// + parts 1..parts + content.
struct NewMessage {
  Envelope envelope;
  std::string prefix;
  std::string content;
  std::uint32_t parts = 0;  // parts stored before the commit (store_part)
};

// Several changes made durable together, atomically: new messages (a DSN),
// updated envelopes (recipient states, next attempt) and removals.
struct SpoolChange {
  std::vector<NewMessage> add;
  std::vector<Envelope> update;
  std::vector<std::uint64_t> remove;
  std::vector<std::uint64_t> discard;  // stored parts of messages never committed
  // Names of maildrop files whose messages are in `add` (server/pickup.h):
  // recorded in the same atomic write, so a crash before the file is removed
  // never queues it twice. forget_picked_up: records whose files are gone.
  std::vector<std::string> picked_up;
  std::vector<std::string> forget_picked_up;
  bool empty() const {
    return add.empty() && update.empty() && remove.empty() && discard.empty() &&
           picked_up.empty() && forget_picked_up.empty();
  }
};

using CommitCallback = std::function<void(CommitResult)>;

// A message a shared spool leased to this node (see Spool::claim).
struct Claim {
  std::uint64_t id = 0;
  bool local = false;  // every pending recipient is local (the scheduler's local lane)
  // "", "delete" or "bounce": an administrator asked for it while another
  // node held the lease; the node that claims the message next does it.
  std::string action;
};
using ClaimCallback = std::function<void(std::vector<Claim>)>;

// What Spool::take found.
enum class TakeResult { kTaken, kLeased, kMissing };

// Thrown by list(), find() and content() while the spool cannot be read at
// all (its database was closed after a write error and is not open again):
// not a missing message. Try again later; the next write tries to reopen it.
class SpoolUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Spool {
 public:
  virtual ~Spool() = default;

  // A fresh InternalId: unique in this spool, increasing, never reused.
  virtual std::uint64_t next_id() = 0;
  // Whether a message of this size fits above the configured free-space floor.
  virtual bool has_room(std::uint64_t size) = 0;
  // Makes change durable, sharing the sync with other pending changes; done
  // runs on a spool thread once it is (or with the error).
  virtual void apply(SpoolChange change, CommitCallback done) = 0;
  // Writes part seq (1, 2, …) of message id before its commit, without a sync
  // of its own: the commit's sync makes it durable with the envelope. Parts of
  // a message that is never committed are dropped with SpoolChange::discard,
  // or at the next start. Blocking: call off the event loops.
  virtual CommitResult store_part(std::uint64_t id, std::uint32_t seq, std::string_view bytes) = 0;
  void commit(NewMessage message, CommitCallback done) {
    SpoolChange change;
    change.add.push_back(std::move(message));
    apply(std::move(change), std::move(done));
  }
  // apply() and wait: for the queue tools, never on an event loop.
  CommitResult apply_and_wait(SpoolChange change);

  // Reads; nullopt: no such message. Throw SpoolUnavailable (above) when the
  // spool cannot be read now.
  virtual std::vector<Envelope> list() = 0;
  virtual std::optional<Envelope> find(std::uint64_t id) = 0;
  virtual std::optional<std::string> content(std::uint64_t id) = 0;
  CommitResult update(const Envelope& envelope) {
    SpoolChange change;
    change.update.push_back(envelope);
    return apply_and_wait(std::move(change));
  }
  CommitResult remove(std::uint64_t id) {
    SpoolChange change;
    change.remove.push_back(id);
    return apply_and_wait(std::move(change));
  }
  // Waits for pending commits; further commits fail. Called at shutdown.
  virtual void close() = 0;
  // The maildrop files recorded by SpoolChange::picked_up and not forgotten
  // yet (blocking). A backend without records returns false and nothing: a
  // crash between its commit and the file's removal may then queue it twice.
  virtual bool keeps_pickup_records() const { return false; }
  virtual bool was_picked_up(const std::string& /*name*/) { return false; }
  virtual std::vector<std::string> picked_up_names() { return {}; }
  // The message trail kept in this spool (see trail.h); null where there is none.
  virtual Trail* trail() { return nullptr; }
  // The queue by state (tern_queue_messages) where the spool counts it itself:
  // a shared spool, whose queue is the cluster's (blocking: one query).
  // nullopt: the scheduler's index counts it.
  virtual std::optional<log::QueueCounts> count_states() { return std::nullopt; }

  // --- A spool shared by several nodes (PostgreSQL, SPEC §6) ---------------
  // Each message is leased to the one node delivering it. A node's spool
  // keeps its leases alive until release(); a node that dies stops renewing
  // them and another node claims the messages once the lease runs out. Updates
  // and removals of a message are written only while this node holds its
  // lease (a write that finds it taken is logged as a possible duplicate and
  // skipped). A spool of one node (RocksDB, memory) has no leases: shared()
  // is false and the scheduler indexes the whole queue itself.
  virtual bool shared() const { return false; }
  // Leases to this node up to `local` messages of the local lane and `remote`
  // others that are due (next attempt passed, not held, no live lease, or an
  // administrator's action waiting); done runs on a spool thread. find() and
  // content() of a leased message do not ask the database again.
  virtual void claim(std::size_t /*local*/, std::size_t /*remote*/, ClaimCallback done) {
    done({});
  }
  // This node is done with id for now; writes applied before are written first.
  virtual void release(std::uint64_t /*id*/) {}
  // An administrator's action on id, from any node (blocking): kTaken: id is
  // now leased to this process, which acts and then calls release(); kLeased:
  // another node holds it, and `action` ("delete", "bounce") is recorded for
  // the node that claims it next.
  virtual TakeResult take(std::uint64_t /*id*/, const std::string& /*action*/) {
    return TakeResult::kTaken;
  }
  // wake runs (on a spool thread) when any node queued mail or made a message
  // due: time to claim.
  virtual void on_queued(std::function<void()> /*wake*/) {}
  // Until this time every lease this node holds is certainly still its own:
  // delivery sends no final dot of a transaction after it.
  virtual std::chrono::steady_clock::time_point leases_until() const {
    return std::chrono::steady_clock::time_point::max();
  }
};

enum class OpenMode { kServe, kReadOnly, kAdmin };

// Opens the backend the configuration names. Throws std::runtime_error with a
// message for the administrator (path, reason) when it cannot.
std::unique_ptr<Spool> open_spool(const config::Config& config, OpenMode mode);

}  // namespace tern::queue
