// The RocksDB spool's write errors: RocksDB's diagnostics redirected to tern's
// log, its own recovery replaced by the spool's (resume in place after ENOSPC,
// close and reopen after a fatal error), and the failed adds removed after a reopen.
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/listener.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>

#include "queue/spool_rocksdb_impl.h"
#include "queue/spool_rocksdb_keys.h"

namespace tern::queue::rocksdb_spool {

namespace {

// RocksDB's own diagnostics go to tern's log (errors as warnings, the rest at
// debug level), not to its LOG file in the spool: once that file hits ENOSPC,
// Debian's RocksDB build asserts on the next line (WritableFileWriter keeps
// the error), which would end tern on a full disk.
class SpoolInfoLog final : public rocksdb::Logger {
 public:
  SpoolInfoLog() : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    char line[1024];
    std::vsnprintf(line, sizeof line, format, ap);
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL)
      spdlog::warn("spool (rocksdb): {}", line);
    else
      spdlog::debug("spool (rocksdb): {}", line);
  }
};

// RocksDB's own recovery from a full disk waits until a memtable's worth of
// space (64 MB) is free beyond its preallocated WAL, and meanwhile answers
// DB::Resume() with Busy: the spool resumes itself instead (resume_if_needed),
// as soon as a write fits again.
class ManualRecovery final : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status,
                            bool* auto_recovery) override {
    *auto_recovery = false;
  }
};

}  // namespace

SpoolStatus status_of(const rocksdb::Status& s) {
  if (s.ok()) return SpoolStatus::kOk;
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace) return SpoolStatus::kNoSpace;
  return SpoolStatus::kError;
}

std::shared_ptr<rocksdb::Logger> make_info_log() {
  return std::make_shared<SpoolInfoLog>();
}

std::shared_ptr<rocksdb::EventListener> make_manual_recovery() {
  return std::make_shared<ManualRecovery>();
}

// After a failed write RocksDB refuses every write with its background
// error. ENOSPC is recoverable: DB::Resume() on the next write, at most once
// a second, so the spool recovers by itself when space comes back. Other
// errors (EIO from a WAL sync) are fatal to the open database: it is closed
// and opened again, and the messages whose commit failed (their client got
// a 4xx) are removed, for WAL recovery may bring back a batch whose sync
// failed. Any thread (committer, store_part) may call it; never with
// db_mu_ held.
void RocksSpool::resume_if_needed() {
  if (!needs_resume_.load()) return;
  std::lock_guard lock(resume_mu_);
  if (!needs_resume_.load()) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_resume_ < tuning_.resume_interval) return;
  last_resume_ = now;
  // The failed adds a resume in place forgets: exactly those known before
  // it, not one that fails while it runs.
  std::vector<std::uint64_t> failed_before;
  std::vector<std::string> failed_pickups_before;
  {
    std::lock_guard failed_lock(failed_mu_);
    failed_before.assign(failed_adds_.begin(), failed_adds_.end());
    failed_pickups_before.assign(failed_pickups_.begin(), failed_pickups_.end());
  }
  bool forgot = false;  // a reopen's removals forgot their own snapshot
  rocksdb::Status s;
  {
    std::shared_lock db_lock(db_mu_);
    s = db_ ? db_->Resume() : rocksdb::Status::Aborted("closed");
  }
  // Busy: RocksDB's own recovery runs. NoSpace: resumable once there is room.
  bool fatal =
      !s.ok() && !s.IsBusy() && !s.IsNoSpace() &&
      (s.severity() >= rocksdb::Status::Severity::kFatalError || s.IsIOError() || s.IsAborted());
  if (fatal) {
    std::unique_lock db_lock(db_mu_);
    close_db();
    s = open_db();
    if (s.ok()) {
      reopened_ = true;
      spdlog::warn("spool: reopened after an error the database cannot resume from");
    }
  }
  if (s.ok() && reopened_) {  // until the removals are written
    std::unique_lock db_lock(db_mu_);
    s = forget_failed_adds();
    forgot = true;
    if (s.ok()) reopened_ = false;
  }
  if (s.ok()) {
    needs_resume_ = false;
    if (!forgot) {  // a resumed database does not replay a failed write
      std::lock_guard failed_lock(failed_mu_);
      for (auto id : failed_before) failed_adds_.erase(id);
      for (const auto& n : failed_pickups_before) failed_pickups_.erase(n);
    }
    spdlog::info("spool: writes resumed after an error");
  } else {
    spdlog::debug("spool: resume failed: {}", s.ToString());
  }
}

// Under db_mu_ held exclusively (no commit runs), after a reopen: removes
// the failed adds known now and forgets exactly those once that is durable.
rocksdb::Status RocksSpool::forget_failed_adds() {
  std::vector<std::uint64_t> ids;
  std::vector<std::string> pickups;
  {
    std::lock_guard lock(failed_mu_);
    ids.assign(failed_adds_.begin(), failed_adds_.end());
    pickups.assign(failed_pickups_.begin(), failed_pickups_.end());
  }
  if (ids.empty() && pickups.empty()) return rocksdb::Status::OK();
  rocksdb::WriteBatch batch;
  for (auto id : ids) {
    batch.Delete(envelopes_, id_key(id));
    batch.Delete(contents_, id_key(id));
    delete_parts(batch, id);
  }
  for (const auto& n : pickups) batch.Delete(default_, pickup_key(n));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = db_->Write(wo, &batch);
  if (s.ok()) {
    std::lock_guard lock(failed_mu_);
    for (auto id : ids) failed_adds_.erase(id);
    for (const auto& n : pickups) failed_pickups_.erase(n);
  }
  return s;
}

// A write failed: log the first failure of an episode, resume on the next.
CommitResult RocksSpool::failed_write(const rocksdb::Status& s) {
  if (!needs_resume_.exchange(true))
    spdlog::error("spool: write failed, refusing new mail until it succeeds: {}", s.ToString());
  return {status_of(s), s.ToString()};
}

// Under db_mu_ held shared, with db_ open; added: the new messages in the
// batch. Their clients get a 4xx if it fails, and WAL recovery may still
// bring the batch back: they are recorded (before a resume can look) to be
// removed after a reopen (resume_if_needed). Once written, they are not
// failed any more (a notice written again under its id must stay).
CommitResult RocksSpool::write_batch(rocksdb::WriteBatch& batch,
                                     const std::vector<std::uint64_t>& added,
                                     const std::vector<std::string>& picked_up) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = db_->Write(wo, &batch);
  if (!added.empty() || !picked_up.empty()) {
    std::lock_guard lock(failed_mu_);
    for (auto id : added) {
      if (s.ok())
        failed_adds_.erase(id);
      else
        failed_adds_.insert(id);
    }
    for (const auto& n : picked_up) {
      if (s.ok())
        failed_pickups_.erase(n);
      else
        failed_pickups_.insert(n);
    }
  }
  if (!s.ok()) return failed_write(s);
  return {};
}

}  // namespace tern::queue::rocksdb_spool
