// The embedded spool on RocksDB (DESIGN.md): envelopes and message contents in
// two column families keyed by the big-endian InternalId, contents above 4 KB in
// blob files. One committer thread turns the queue of pending commits into one
// synced WriteBatch (group commit); the free-space floor is checked per batch.
#pragma once

#include <memory>

#include "queue/spool.h"

namespace tern::queue {

std::unique_ptr<Spool> open_rocksdb_spool(const config::Spool& config, OpenMode mode);

}  // namespace tern::queue
