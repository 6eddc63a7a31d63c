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
#include <string>
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
struct NewMessage {
  Envelope envelope;
  std::string prefix;
  std::string content;
};

using CommitCallback = std::function<void(CommitResult)>;

class Spool {
 public:
  virtual ~Spool() = default;

  // A fresh InternalId: unique in this spool, increasing, never reused.
  virtual std::uint64_t next_id() = 0;
  // Whether a message of this size fits above the configured free-space floor.
  virtual bool has_room(std::uint64_t size) = 0;
  virtual void commit(NewMessage message, CommitCallback done) = 0;

  virtual std::vector<Envelope> list() = 0;
  virtual std::optional<Envelope> find(std::uint64_t id) = 0;
  virtual std::optional<std::string> content(std::uint64_t id) = 0;
  // Durable updates from the scheduler and the queue tools.
  virtual CommitResult update(const Envelope& envelope) = 0;
  virtual CommitResult remove(std::uint64_t id) = 0;
  // Waits for pending commits; further commits fail. Called at shutdown.
  virtual void close() = 0;
};

enum class OpenMode { kServe, kReadOnly, kAdmin };

// Opens the backend the configuration names. Throws std::runtime_error with a
// message for the administrator (path, reason) when it cannot.
std::unique_ptr<Spool> open_spool(const config::Config& config, OpenMode mode);

}  // namespace tern::queue
