// The PostgreSQL spool: opening (connection, schema, a restarted node's old
// leases), ids, reads, streamed parts, an administrator's take() and close.
// The committer is in spool_postgres_commit.cpp; the statements in spool_postgres_sql.h.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

#include "queue/spool_postgres_impl.h"
#include "queue/spool_postgres_sql.h"

namespace tern::queue {

namespace postgres_spool {

namespace {

std::string owner_name(const config::Config& config, OpenMode mode) {
  std::string node = config.cluster.node;
  if (node.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) node = host;
    if (node.empty()) node = "tern";
  }
  // A queue tool holds its leases apart from the node's server on the same host.
  if (mode != OpenMode::kServe) node += "/queue-" + std::to_string(::getpid());
  return node;
}

}  // namespace

PgSpool::PgSpool(const config::Config& config, OpenMode mode)
    : config_(config),
      mode_(mode),
      owner_(owner_name(config, mode)),
      lease_(std::chrono::milliseconds(config.cluster.lease_ms)),
      reads_(config.spool.postgres),
      parts_(config.spool.postgres, {"SET synchronous_commit = off"}),
      trail_(config.spool.postgres, {"SET synchronous_commit = off"}) {
  std::string where = pg::describe(config.spool.postgres);
  try {
    reads_.connect();
    if (mode == OpenMode::kReadOnly) {
      check_schema();
    } else {
      migrate();
    }
    if (mode == OpenMode::kServe) {
      // This node's earlier process is gone: what it held is free again.
      auto r = reads_.run({sql::kReleaseAll, {pg::text(owner_)}, false});
      if (r.affected() > 0)
        spdlog::info("spool: released {} lease(s) an earlier tern on node {} held", r.affected(),
                     owner_);
      auto orphans = reads_.run({sql::kDropOrphanChunks, {}, false});
      if (orphans.affected() > 0)
        spdlog::info("spool: dropped {} chunk(s) of messages that were never committed",
                     orphans.affected());
    }
    if (mode != OpenMode::kReadOnly) ids_.add(reserve_block_blocking());
  } catch (const pg::ConnectionLost& e) {
    throw std::runtime_error(std::string("PostgreSQL spool: ") + e.what());
  } catch (const pg::QueryFailed& e) {
    throw std::runtime_error("PostgreSQL spool at " + where + ": " + e.what());
  }
  if (mode != OpenMode::kReadOnly) start_committer();
  if (config.log.trail_ms > 0) {
    trail_view_ = std::make_unique<PgTrail>(*this);
    if (mode != OpenMode::kReadOnly)  // kAdmin: the queue tools' own events
      trail_writer_ = std::make_unique<TrailWriter>(
          config.log.trail_ms, [this](const auto& events) { trail_write(events); },
          [this](std::int64_t cutoff) { trail_expire(cutoff); });
  }
}

PgSpool::~PgSpool() {
  close();
}

// Creates or upgrades the schema; two nodes starting at once take turns
// (the advisory lock), and a schema newer than this tern is refused.
void PgSpool::migrate() {
  int version = reads_.transaction([](auto exec) {
    exec({sql::kLock, {}, false});
    exec({sql::kSchemaTable, {}, false});
    auto r = exec({sql::kSchemaVersionQuery, {}, false});
    int v = r.is_null(0, 0) ? 0 : static_cast<int>(r.integer(0, 0));
    if (v > sql::kSchemaVersion) return v;
    if (v < 1)
      for (const char* statement : sql::kSchemaV1) exec({statement, {}, false});
    if (v < 2)
      for (const char* statement : sql::kSchemaV2) exec({statement, {}, false});
    return sql::kSchemaVersion;
  });
  if (version > sql::kSchemaVersion)
    throw std::runtime_error("the PostgreSQL spool at " + pg::describe(config_.spool.postgres) +
                             " has schema version " + std::to_string(version) +
                             ", newer than this tern knows (" +
                             std::to_string(sql::kSchemaVersion) + "): upgrade tern");
}

// For a read-only open: the schema must be there, and not newer.
void PgSpool::check_schema() {
  std::string where = pg::describe(config_.spool.postgres);
  auto exists = reads_.run({sql::kSchemaTableExists, {}, false});
  if (!exists.boolean(0, 0))
    throw std::runtime_error("the database at " + where +
                             " holds no tern queue (has tern serve run with it yet?)");
  auto r = reads_.run({sql::kSchemaVersionQuery, {}, false});
  int v = r.is_null(0, 0) ? 0 : static_cast<int>(r.integer(0, 0));
  if (v > sql::kSchemaVersion)
    throw std::runtime_error("the PostgreSQL spool at " + where + " has schema version " +
                             std::to_string(v) + ", newer than this tern knows (" +
                             std::to_string(sql::kSchemaVersion) + "): upgrade tern");
}

std::uint64_t PgSpool::reserve_block_blocking() {
  auto r = reads_.run({sql::kNextBlock, {}, false});
  return static_cast<std::uint64_t>(r.integer(0, 0));
}

std::uint64_t PgSpool::next_id() {
  for (;;) {
    if (auto id = ids_.take()) {
      if (ids_.refill()) {
        std::lock_guard lock(mu_);
        want_ids_ = true;
        signal();
      }
      return *id;
    }
    // Every reserved id is used and the refill has not come: reserve here.
    try {
      ids_.add(reserve_block_blocking());
    } catch (const std::exception& e) {
      throw SpoolUnavailable(std::string("cannot reserve InternalIds: ") + e.what());
    }
  }
}

void PgSpool::hold(std::uint64_t id, std::int64_t epoch, std::string_view envelope,
                   std::string content) {
  Lease lease;
  lease.epoch = epoch;
  try {
    lease.envelope = decode_envelope(envelope);
  } catch (const std::exception& e) {
    lease.error = e.what();
  }
  lease.content = std::move(content);
  std::lock_guard lock(leases_mu_);
  if (leases_.empty()) leases_until_ = std::chrono::steady_clock::now() + lease_ - lease_ / 6;
  leases_[id] = std::move(lease);
}

std::vector<Envelope> PgSpool::list() {
  std::vector<Envelope> out;
  try {
    auto r = reads_.run({sql::kList, {}, true});
    for (int i = 0; i < r.rows(); ++i) {
      auto id = static_cast<std::uint64_t>(r.integer(i, 0));
      try {
        out.push_back(decode_envelope(r.raw(i, 1)));
      } catch (const std::exception& e) {
        // Shown and held, never dropped: the administrator decides.
        out.push_back(unreadable_envelope(id, e.what()));
      }
    }
  } catch (const pg::ConnectionLost& e) {
    throw SpoolUnavailable(e.what());
  }
  return out;
}

std::optional<log::QueueCounts> PgSpool::count_states() {
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  try {
    auto r = reads_.run({sql::kCountStates, {pg::number(now_ms)}, false});
    if (r.rows() != 1) return std::nullopt;
    log::QueueCounts c;
    c.active = r.integer(0, 0);
    c.queued = r.integer(0, 1);
    c.deferred = r.integer(0, 2);
    c.held = r.integer(0, 3);
    c.quarantined = r.integer(0, 4);
    return c;
  } catch (const pg::ConnectionLost&) {
    return std::nullopt;
  }
}

std::optional<Envelope> PgSpool::find(std::uint64_t id) {
  {
    std::lock_guard lock(leases_mu_);
    auto it = leases_.find(id);
    if (it != leases_.end()) {
      if (!it->second.envelope) throw std::runtime_error(it->second.error);
      return it->second.envelope;
    }
  }
  try {
    auto r = reads_.run({sql::kFind, {pg::number(static_cast<std::int64_t>(id))}, true});
    if (r.rows() == 0) return std::nullopt;
    return decode_envelope(r.raw(0, 0));
  } catch (const pg::ConnectionLost& e) {
    throw SpoolUnavailable(e.what());
  }
}

bool PgSpool::was_picked_up(const std::string& name) {
  try {
    return reads_.run({sql::kWasPickedUp, {pg::text(owner_), pg::text(name)}, false}).rows() > 0;
  } catch (const pg::ConnectionLost& e) {
    throw SpoolUnavailable(e.what());
  }
}

std::vector<std::string> PgSpool::picked_up_names() {
  try {
    auto r = reads_.run({sql::kPickedUpNames, {pg::text(owner_)}, false});
    std::vector<std::string> names;
    for (int i = 0; i < r.rows(); ++i) names.push_back(r.string(i, 0));
    return names;
  } catch (const pg::ConnectionLost& e) {
    throw SpoolUnavailable(e.what());
  }
}

std::optional<std::string> PgSpool::content(std::uint64_t id) {
  {
    std::lock_guard lock(leases_mu_);
    auto it = leases_.find(id);
    if (it != leases_.end()) return it->second.content;
  }
  try {
    auto r = reads_.run({sql::kContent, {pg::number(static_cast<std::int64_t>(id))}, true});
    if (r.rows() == 0) return std::nullopt;
    return r.string(0, 0);
  } catch (const pg::ConnectionLost& e) {
    throw SpoolUnavailable(e.what());
  }
}

CommitResult PgSpool::store_part(std::uint64_t id, std::uint32_t seq, std::string_view bytes) {
  if (mode_ == OpenMode::kReadOnly) return {SpoolStatus::kError, "spool opened read-only"};
  try {
    // Unsynced: the commit of the message flushes the WAL past it (and
    // tern_parts_present checks that it is there).
    parts_.run({sql::kInsertChunks,
                {pg::number(static_cast<std::int64_t>(id)), pg::number(seq),
                 pg::bytes(std::string(bytes))},
                false});
    return {};
  } catch (const std::exception& e) {
    return {SpoolStatus::kError, e.what()};
  }
}

TakeResult PgSpool::take(std::uint64_t id, const std::string& action) {
  try {
    auto sid = pg::number(static_cast<std::int64_t>(id));
    auto r = reads_.run({sql::kTake, {sid, pg::text(owner_), pg::number(lease_.count())}, true});
    if (r.rows() == 1) {
      hold(id, r.integer(0, 0), r.raw(0, 1), r.string(0, 2));
      return TakeResult::kTaken;
    }
    auto a = reads_.run({sql::kRecordAction, {sid, pg::text(action)}, false});
    return a.rows() == 1 ? TakeResult::kLeased : TakeResult::kMissing;
  } catch (const pg::ConnectionLost& e) {
    throw SpoolUnavailable(e.what());
  }
}

std::chrono::steady_clock::time_point PgSpool::leases_until() const {
  std::lock_guard lock(leases_mu_);
  if (leases_.empty()) return std::chrono::steady_clock::time_point::max();
  return leases_until_;
}

void PgSpool::close() {
  {
    std::lock_guard lock(mu_);
    if (closing_) return;
    closing_ = true;
  }
  if (trail_writer_) trail_writer_->stop();  // writes what is queued
  if (!io_) return;
  signal();
  // The committer writes what is pending and releases this node's leases.
  drained_.get_future().wait();
  work_.reset();
  io_->stop();
  if (thread_.joinable()) thread_.join();
  // Coroutines still waiting (LISTEN) are destroyed with the loop, before
  // the connections they use.
  signal_.reset();
  accept_signal_.reset();
  io_.reset();
  listener_.reset();
  writer_.reset();
  accepters_.clear();
}

}  // namespace postgres_spool

std::unique_ptr<Spool> open_postgres_spool(const config::Config& config, OpenMode mode) {
  if (config.spool.postgres.empty())
    throw std::runtime_error(
        "[spool] backend = \"postgres\" needs [spool] postgres (a libpq "
        "connection string)");
  return std::make_unique<postgres_spool::PgSpool>(config, mode);
}

}  // namespace tern::queue
