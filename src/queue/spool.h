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

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "queue/envelope.h"

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
  bool empty() const { return add.empty() && update.empty() && remove.empty() && discard.empty(); }
};

using CommitCallback = std::function<void(CommitResult)>;

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
};

enum class OpenMode { kServe, kReadOnly, kAdmin };

// Opens the backend the configuration names. Throws std::runtime_error with a
// message for the administrator (path, reason) when it cannot.
std::unique_ptr<Spool> open_spool(const config::Config& config, OpenMode mode);

}  // namespace tern::queue
