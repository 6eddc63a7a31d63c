// Internal to the RocksDB spool: the RocksSpool class, shared by its three
// sources: spool_rocksdb.cpp (open, reads, parts), spool_rocksdb_commit.cpp (the
// committer's group commit) and spool_rocksdb_recovery.cpp (write errors).
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/listener.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "queue/spool.h"
#include "queue/spool_rocksdb.h"
#include "queue/trail_writer.h"

namespace tern::queue::rocksdb_spool {

// RocksDB status to the spool's: ENOSPC is kNoSpace, any other failure kError.
SpoolStatus status_of(const rocksdb::Status& s);
// The info log and the listener every open installs (spool_rocksdb_recovery.cpp).
std::shared_ptr<rocksdb::Logger> make_info_log();
std::shared_ptr<rocksdb::EventListener> make_manual_recovery();

class RocksSpool final : public Spool {
 public:
  RocksSpool(const config::Spool& cfg, OpenMode mode, const RocksSpoolTuning& tuning);
  ~RocksSpool() override;

  std::uint64_t next_id() override;
  bool has_room(std::uint64_t size) override;
  void apply(SpoolChange change, CommitCallback done) override;
  std::vector<Envelope> list() override;
  std::optional<Envelope> find(std::uint64_t id) override;
  std::optional<std::string> content(std::uint64_t id) override;
  CommitResult store_part(std::uint64_t id, std::uint32_t seq, std::string_view bytes) override;
  void close() override;
  bool keeps_pickup_records() const override { return true; }
  bool was_picked_up(const std::string& name) override;
  std::vector<std::string> picked_up_names() override;
  Trail* trail() override { return trail_view_ ? trail_view_.get() : nullptr; }

 private:
  // The message trail of this spool (spool_rocksdb_trail.cpp).
  class RocksTrail final : public Trail {
   public:
    explicit RocksTrail(RocksSpool& spool) : spool_(spool) {}
    std::vector<TrailEvent> find(const TrailQuery& query) override {
      return spool_.trail_find(query);
    }
    void record(TrailEvent event) override {
      if (spool_.trail_writer_) spool_.trail_writer_->record(std::move(event));
    }

   private:
    RocksSpool& spool_;
  };

  struct Pending {
    SpoolChange change;
    CommitCallback done;
  };

  // spool_rocksdb.cpp: opening, closing, ids, orphan parts.
  static SpoolUnavailable unavailable();
  void init_next_id();
  rocksdb::Status open_db();
  void close_db();
  void drop_orphan_parts();

  // spool_rocksdb_recovery.cpp: write errors, resume and reopen.
  void resume_if_needed();
  rocksdb::Status forget_failed_adds();
  CommitResult failed_write(const rocksdb::Status& s);
  CommitResult write_batch(rocksdb::WriteBatch& batch, const std::vector<std::uint64_t>& added,
                           const std::vector<std::string>& picked_up);

  // spool_rocksdb_commit.cpp: the committer.
  bool parts_intact(const NewMessage& m);
  void commit_loop();
  void add_to_batch(rocksdb::WriteBatch& batch, const SpoolChange& change);
  void delete_parts(rocksdb::WriteBatch& batch, std::uint64_t id);

  // spool_rocksdb_trail.cpp: the message trail.
  void trail_write(const std::vector<TrailEvent>& events);
  std::vector<TrailEvent> trail_find(const TrailQuery& query);
  std::vector<std::uint64_t> trail_ids(char kind, std::string_view value);
  void trail_expire(std::int64_t cutoff_ms);

  config::Spool cfg_;
  OpenMode mode_;
  RocksSpoolTuning tuning_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  rocksdb::ColumnFamilyHandle* envelopes_ = nullptr;
  rocksdb::ColumnFamilyHandle* contents_ = nullptr;
  rocksdb::ColumnFamilyHandle* parts_ = nullptr;
  rocksdb::ColumnFamilyHandle* trail_ = nullptr;  // null: no trail in this database
  std::atomic<std::uint64_t> next_id_{1};

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> pending_;
  bool closing_ = false;
  std::thread committer_;

  // Readers and writers hold db_mu_ shared; a reopen holds it exclusively.
  std::shared_mutex db_mu_;
  std::atomic<bool> needs_resume_{false};
  std::mutex resume_mu_;
  bool reopened_ = false;  // under resume_mu_: failed_adds_ still to remove
  std::mutex failed_mu_;
  std::unordered_set<std::uint64_t> failed_adds_;  // new messages whose commit failed
  // Their pickup records (SpoolChange::picked_up): removed with them, or a
  // record replayed from the log would have the pickup drop a lost message.
  std::unordered_set<std::string> failed_pickups_;
  std::uint64_t generation_ = 0;  // under db_mu_: database closes so far
  std::mutex parts_mu_;
  // Streamed messages not yet committed: the generation of their first part.
  std::unordered_map<std::uint64_t, std::uint64_t> part_generation_;
  std::chrono::steady_clock::time_point last_resume_{};

  // The trail: null when [log] trail is 0; a writer unless opened read-only.
  std::unique_ptr<RocksTrail> trail_view_;
  std::unique_ptr<TrailWriter> trail_writer_;
  std::atomic<std::uint32_t> trail_seq_{0};
};

}  // namespace tern::queue::rocksdb_spool
