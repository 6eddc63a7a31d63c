// open_spool(): the backend [spool] backend names (kept apart from spool.cpp so
// that code using only the interface, such as the session fuzzer, does not
// pull RocksDB or libpq in).
#include <stdexcept>

#include "queue/spool.h"
#include "queue/spool_postgres.h"
#include "queue/spool_rocksdb.h"

namespace tern::queue {

std::unique_ptr<Spool> open_spool(const config::Config& config, OpenMode mode) {
  if (config.spool.backend == "rocksdb") {
    RocksSpoolTuning tuning;
    tuning.trail_ms = config.log.trail_ms;
    return open_rocksdb_spool(config.spool, mode, tuning);
  }
  if (config.spool.backend == "postgres") return open_postgres_spool(config, mode);
  throw std::runtime_error("spool backend \"" + config.spool.backend +
                           "\" is not available in this build");
}

}  // namespace tern::queue
