// The embedded spool on RocksDB (DESIGN.md): envelopes and message contents in
// two column families keyed by the big-endian InternalId, contents above 4 KB in
// blob files. One committer thread turns the queue of pending commits into one
// synced WriteBatch (group commit); the free-space floor is checked per batch.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "queue/spool.h"

namespace rocksdb {
class Env;
}

namespace tern::queue {

// What tests change: the RocksDB Env (to inject write errors) and how often
// a failed spool tries to resume or reopen (at most once per interval); and
// the message trail's retention ([log] trail; 0: no trail).
struct RocksSpoolTuning {
  rocksdb::Env* env = nullptr;  // nullptr: RocksDB's default
  std::chrono::milliseconds resume_interval{1000};
  std::uint64_t trail_ms = 0;
};

std::unique_ptr<Spool> open_rocksdb_spool(const config::Spool& config, OpenMode mode,
                                          const RocksSpoolTuning& tuning = {});

}  // namespace tern::queue
