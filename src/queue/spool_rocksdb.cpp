#include "queue/spool_rocksdb.h"

#include <rocksdb/db.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace tern::queue {

namespace {

constexpr const char* kEnvelopes = "envelopes";
constexpr const char* kContents = "contents";
constexpr const char* kParts = "parts";  // streamed parts of large messages
constexpr const char* kNextIdKey = "next_id";

std::string id_key(std::uint64_t id) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i) {
    k[i] = static_cast<char>(id & 0xff);
    id >>= 8;
  }
  return k;
}

// Parts sort after their message's id: id (8 octets) + seq (4), big-endian.
std::string part_key(std::uint64_t id, std::uint32_t seq) {
  std::string k = id_key(id);
  for (int shift = 24; shift >= 0; shift -= 8) k += static_cast<char>((seq >> shift) & 0xff);
  return k;
}

std::uint64_t key_id(const rocksdb::Slice& k) {
  std::uint64_t id = 0;
  for (size_t i = 0; i < k.size() && i < 8; ++i) id = (id << 8) | static_cast<unsigned char>(k[i]);
  return id;
}

SpoolStatus status_of(const rocksdb::Status& s) {
  if (s.ok()) return SpoolStatus::kOk;
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace) return SpoolStatus::kNoSpace;
  return SpoolStatus::kError;
}

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

class RocksSpool final : public Spool {
 public:
  RocksSpool(const config::Spool& cfg, OpenMode mode, const RocksSpoolTuning& tuning)
      : cfg_(cfg), mode_(mode), tuning_(tuning) {
    namespace fs = std::filesystem;
    if (mode == OpenMode::kReadOnly) {
      if (!fs::exists(cfg.path / "CURRENT"))
        throw std::runtime_error("no spool at " + cfg.path.string() + " (has tern serve run yet?)");
    } else {
      std::error_code ec;
      fs::create_directories(cfg.path, ec);
      if (ec)
        throw std::runtime_error("cannot create spool folder " + cfg.path.string() + ": " +
                                 ec.message());
    }
    auto s = open_db();
    // A read-only open beside a running server reads its WAL files; one the
    // server retires meanwhile makes the open fail. Such a race ends after a
    // few tries; anything else is reported at once.
    for (int tries = 1; mode == OpenMode::kReadOnly && !s.ok() && s.IsIOError() &&
                        s.ToString().find("No such file") != std::string::npos && tries < 10;
         ++tries)
      s = open_db();
    if (!s.ok()) {
      std::string why = s.ToString();
      if (why.find("lock") != std::string::npos ||
          why.find("Resource temporarily") != std::string::npos)
        why = "the spool is in use by another tern process (" + why + ")";
      throw std::runtime_error("cannot open spool " + cfg.path.string() + ": " + why);
    }
    init_next_id();
    if (mode == OpenMode::kServe) drop_orphan_parts();
    if (mode != OpenMode::kReadOnly) committer_ = std::thread([this] { commit_loop(); });
  }

  ~RocksSpool() override {
    close();
    std::unique_lock lock(db_mu_);
    close_db();
  }

  std::uint64_t next_id() override { return next_id_.fetch_add(1); }

  bool has_room(std::uint64_t size) override {
    struct statvfs st {};
    if (statvfs(cfg_.path.c_str(), &st) != 0) return true;  // cannot tell: let the write decide
    std::uint64_t free = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    return free >= cfg_.min_free + size;
  }

  void apply(SpoolChange change, CommitCallback done) override {
    if (mode_ == OpenMode::kReadOnly) {
      done({SpoolStatus::kError, "spool opened read-only"});
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (!closing_) {
        pending_.push_back({std::move(change), std::move(done)});
        cv_.notify_one();
        return;
      }
    }
    done({SpoolStatus::kError, "spool is closing"});
  }

  std::vector<Envelope> list() override {
    std::vector<Envelope> out;
    std::shared_lock lock(db_mu_);
    if (!db_) throw unavailable();
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), envelopes_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      try {
        out.push_back(decode_envelope(std::string_view(it->value().data(), it->value().size())));
      } catch (const std::exception& e) {
        // Shown and held, never dropped: the administrator decides (tern queue delete).
        out.push_back(unreadable_envelope(key_id(it->key()), e.what()));
      }
    }
    return out;
  }

  std::optional<Envelope> find(std::uint64_t id) override {
    std::string value;
    std::shared_lock lock(db_mu_);
    if (!db_) throw unavailable();
    auto s = db_->Get(rocksdb::ReadOptions(), envelopes_, id_key(id), &value);
    if (!s.ok()) return std::nullopt;
    return decode_envelope(value);
  }

  std::optional<std::string> content(std::uint64_t id) override {
    std::string value;
    std::shared_lock lock(db_mu_);
    if (!db_) throw unavailable();
    auto s = db_->Get(rocksdb::ReadOptions(), contents_, id_key(id), &value);
    if (!s.ok()) return std::nullopt;
    if (!parts_) return value;
    // A streamed message has part 1 (parts count from 1); most messages have
    // none, and a point lookup costs much less than an iterator over the family.
    rocksdb::PinnableSlice first;
    if (db_->Get(rocksdb::ReadOptions(), parts_, part_key(id, 1), &first).IsNotFound())
      return value;
    // prefix, then the parts in order; the last part is the tail of the message.
    std::string prefix = id_key(id);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), parts_));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
      value.append(it->value().data(), it->value().size());
    return value;
  }

  CommitResult store_part(std::uint64_t id, std::uint32_t seq, std::string_view bytes) override {
    if (mode_ == OpenMode::kReadOnly) return {SpoolStatus::kError, "spool read-only"};
    if (!has_room(bytes.size()))
      return {SpoolStatus::kNoSpace, "free space below [spool] min_free"};
    resume_if_needed();  // also reopens a spool whose earlier reopen failed
    std::shared_lock lock(db_mu_);
    if (!db_ || !parts_)
      return {SpoolStatus::kError, "the spool could not be reopened after a write error"};
    rocksdb::WriteOptions wo;  // no sync: the commit's sync covers it (one WAL)
    auto s = db_->Put(wo, parts_, part_key(id, seq), rocksdb::Slice(bytes.data(), bytes.size()));
    if (!s.ok()) return failed_write(s);
    if (seq == 1) {  // the commit checks that no reopen has happened since
      std::lock_guard parts_lock(parts_mu_);
      part_generation_[id] = generation_;
    }
    return {};
  }

  void close() override {
    {
      std::lock_guard lock(mu_);
      if (closing_) return;
      closing_ = true;
      cv_.notify_one();
    }
    if (committer_.joinable()) committer_.join();
    std::shared_lock lock(db_mu_);
    if (mode_ != OpenMode::kReadOnly && db_) db_->FlushWAL(true);
  }

 private:
  struct Pending {
    SpoolChange change;
    CommitCallback done;
  };

  static SpoolUnavailable unavailable() {
    return SpoolUnavailable(
        "the spool is closed after a write error and could not be reopened yet; it tries again "
        "on the next write");
  }

  void init_next_id() {
    std::uint64_t next = 1;
    std::string value;
    if (db_->Get(rocksdb::ReadOptions(), default_, kNextIdKey, &value).ok() && value.size() == 8)
      next = key_id(value);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), envelopes_));
    it->SeekToLast();
    if (it->Valid()) next = std::max(next, key_id(it->key()) + 1);
    // Ids look like Exchange's: 13 digits that grow with time, unique across restarts.
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    next = std::max<std::uint64_t>(next, static_cast<std::uint64_t>(now_ms));
    next_id_.store(next);
  }

  // The database and its column families; kParts where it exists (a spool
  // written before parts existed has none: read-only opens take what is there).
  rocksdb::Status open_db() {
    rocksdb::Options options;
    options.create_if_missing = mode_ != OpenMode::kReadOnly;
    options.create_missing_column_families = mode_ != OpenMode::kReadOnly;
    options.info_log = std::make_shared<SpoolInfoLog>();
    if (tuning_.env) options.env = tuning_.env;
    options.listeners.push_back(std::make_shared<ManualRecovery>());
    options.max_total_wal_size = 64 << 20;
    options.IncreaseParallelism(2);

    rocksdb::ColumnFamilyOptions envelopes;
    rocksdb::ColumnFamilyOptions contents;
    contents.enable_blob_files = true;
    contents.min_blob_size = 4096;
    contents.enable_blob_garbage_collection = true;
    // Parts are large and short-lived: small memtables keep the memory they
    // cost bounded however many messages stream in at once.
    rocksdb::ColumnFamilyOptions parts = contents;
    parts.write_buffer_size = 8 << 20;
    parts.max_write_buffer_number = 3;

    std::vector<rocksdb::ColumnFamilyDescriptor> families{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
        {kEnvelopes, envelopes},
        {kContents, contents}};
    std::vector<std::string> existing;
    bool has_parts =
        !rocksdb::DB::ListColumnFamilies(options, cfg_.path.string(), &existing).ok() ||
        std::find(existing.begin(), existing.end(), kParts) != existing.end();
    if (mode_ != OpenMode::kReadOnly || has_parts) families.push_back({kParts, parts});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s =
        mode_ == OpenMode::kReadOnly
            ? rocksdb::DB::OpenForReadOnly(options, cfg_.path.string(), families, &handles, &db)
            : rocksdb::DB::Open(options, cfg_.path.string(), families, &handles, &db);
    if (!s.ok()) return s;
    db_.reset(db);
    default_ = handles[0];
    envelopes_ = handles[1];
    contents_ = handles[2];
    if (handles.size() > 3) parts_ = handles[3];
    return s;
  }

  // Under db_mu_ held exclusively. Unsynced writes (streamed parts) may be
  // lost with the database: a new generation starts.
  void close_db() {
    if (!db_) return;
    ++generation_;
    for (auto* h : {default_, envelopes_, contents_, parts_})
      if (h) db_->DestroyColumnFamilyHandle(h);
    default_ = envelopes_ = contents_ = parts_ = nullptr;
    db_->Close().PermitUncheckedError();
    db_.reset();
  }

  // After a failed write RocksDB refuses every write with its background
  // error. ENOSPC is recoverable: DB::Resume() on the next write, at most once
  // a second, so the spool recovers by itself when space comes back. Other
  // errors (EIO from a WAL sync) are fatal to the open database: it is closed
  // and opened again, and the messages whose commit failed (their client got
  // a 4xx) are removed, for WAL recovery may bring back a batch whose sync
  // failed. Any thread (committer, store_part) may call it; never with
  // db_mu_ held.
  void resume_if_needed() {
    if (!needs_resume_.load()) return;
    std::lock_guard lock(resume_mu_);
    if (!needs_resume_.load()) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_resume_ < tuning_.resume_interval) return;
    last_resume_ = now;
    // The failed adds a resume in place forgets: exactly those known before
    // it, not one that fails while it runs.
    std::vector<std::uint64_t> failed_before;
    {
      std::lock_guard failed_lock(failed_mu_);
      failed_before.assign(failed_adds_.begin(), failed_adds_.end());
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
      }
      spdlog::info("spool: writes resumed after an error");
    } else {
      spdlog::debug("spool: resume failed: {}", s.ToString());
    }
  }

  // Under db_mu_ held exclusively (no commit runs), after a reopen: removes
  // the failed adds known now and forgets exactly those once that is durable.
  rocksdb::Status forget_failed_adds() {
    std::vector<std::uint64_t> ids;
    {
      std::lock_guard lock(failed_mu_);
      ids.assign(failed_adds_.begin(), failed_adds_.end());
    }
    if (ids.empty()) return rocksdb::Status::OK();
    rocksdb::WriteBatch batch;
    for (auto id : ids) {
      batch.Delete(envelopes_, id_key(id));
      batch.Delete(contents_, id_key(id));
      delete_parts(batch, id);
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto s = db_->Write(wo, &batch);
    if (s.ok()) {
      std::lock_guard lock(failed_mu_);
      for (auto id : ids) failed_adds_.erase(id);
    }
    return s;
  }

  // A write failed: log the first failure of an episode, resume on the next.
  CommitResult failed_write(const rocksdb::Status& s) {
    if (!needs_resume_.exchange(true))
      spdlog::error("spool: write failed, refusing new mail until it succeeds: {}", s.ToString());
    return {status_of(s), s.ToString()};
  }

  // Under db_mu_ held shared, with db_ open; added: the new messages in the
  // batch. Their clients get a 4xx if it fails, and WAL recovery may still
  // bring the batch back: they are recorded (before a resume can look) to be
  // removed after a reopen (resume_if_needed). Once written, they are not
  // failed any more (a notice written again under its id must stay).
  CommitResult write_batch(rocksdb::WriteBatch& batch, const std::vector<std::uint64_t>& added) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto s = db_->Write(wo, &batch);
    if (!added.empty()) {
      std::lock_guard lock(failed_mu_);
      for (auto id : added) {
        if (s.ok())
          failed_adds_.erase(id);
        else
          failed_adds_.insert(id);
      }
    }
    if (!s.ok()) return failed_write(s);
    return {};
  }

  // Under db_mu_ held shared. Whether the parts of a streamed message were all
  // stored since the last reopen: parts are written without a sync, so a
  // reopen after an error may have lost some, and the message would be
  // stored truncated. Forgets the message's parts generation either way.
  bool parts_intact(const NewMessage& m) {
    std::lock_guard lock(parts_mu_);
    auto it = part_generation_.find(m.envelope.id);
    if (it == part_generation_.end()) return false;
    bool same = it->second == generation_;
    part_generation_.erase(it);
    return same;
  }

  // The committer: everything pending goes into one WriteBatch and one sync.
  void commit_loop() {
    std::vector<Pending> items;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !pending_.empty() || closing_; });
        if (pending_.empty() && closing_) return;
        items.swap(pending_);
      }
      // The free-space floor ([spool] min_free) is for new mail only: the
      // bookkeeping of mail already accepted (recipient states, removals,
      // discarded parts, the notices tern owes) is never refused by it, or a
      // full disk would make delivered mail be delivered again.
      std::uint64_t new_mail = 0, max_id = 0;
      for (const auto& p : items)
        for (const auto& m : p.change.add) {
          if (!m.envelope.is_dsn) new_mail += m.prefix.size() + m.content.size();
          max_id = std::max(max_id, m.envelope.id);
        }
      bool room_for_new_mail = new_mail == 0 || has_room(new_mail);
      resume_if_needed();
      std::shared_lock db_lock(db_mu_);
      CommitResult result;
      // A change that cannot be put into the batch fails alone; the others
      // still share the sync. Nothing thrown here may end this thread.
      std::vector<std::optional<CommitResult>> refused(items.size());
      rocksdb::WriteBatch batch;
      for (std::size_t i = 0; i < items.size(); ++i) {
        bool adds_new_mail = false, lost_parts = false;
        for (const auto& m : items[i].change.add) {
          adds_new_mail |= !m.envelope.is_dsn;
          if (m.parts > 0 && !parts_intact(m)) lost_parts = true;
        }
        if (lost_parts) {  // its client gets a 4xx and sends it again
          refused[i] = CommitResult{SpoolStatus::kError,
                                    "parts of the message written before the spool was reopened "
                                    "after an error may be lost"};
          continue;
        }
        if (adds_new_mail && !room_for_new_mail) {
          refused[i] = CommitResult{SpoolStatus::kNoSpace, "free space below [spool] min_free"};
          continue;
        }
        batch.SetSavePoint();
        try {
          add_to_batch(batch, items[i].change);
          batch.PopSavePoint();
        } catch (const std::exception& e) {
          batch.RollbackToSavePoint();
          refused[i] = CommitResult{SpoolStatus::kError, e.what()};
        }
      }
      std::vector<std::uint64_t> added;
      for (std::size_t i = 0; i < items.size(); ++i)
        if (!refused[i])
          for (const auto& m : items[i].change.add) added.push_back(m.envelope.id);
      if (!db_) {
        result = {SpoolStatus::kError, "the spool could not be reopened after a write error"};
      } else {
        if (max_id > 0) batch.Put(default_, kNextIdKey, id_key(max_id + 1));
        if (batch.Count() > 0) result = write_batch(batch, added);
      }
      db_lock.unlock();
      for (std::size_t i = 0; i < items.size(); ++i) {
        try {
          items[i].done(refused[i] ? *refused[i] : result);
        } catch (const std::exception& e) {
          spdlog::error("spool: a commit callback failed: {}", e.what());
        }
      }
      items.clear();
    }
  }

  void add_to_batch(rocksdb::WriteBatch& batch, const SpoolChange& change) {
    for (const auto& m : change.add) {
      std::string key = id_key(m.envelope.id);
      if (m.parts > 0) {  // streamed: the prefix here, the tail after the parts
        batch.Put(contents_, key, m.prefix);
        batch.Put(parts_, part_key(m.envelope.id, m.parts + 1), m.content);
      } else {
        rocksdb::Slice parts[2] = {m.prefix, m.content};
        rocksdb::Slice key_slice(key);
        batch.Put(contents_, rocksdb::SliceParts(&key_slice, 1), rocksdb::SliceParts(parts, 2));
      }
      batch.Put(envelopes_, key, encode(m.envelope));
    }
    for (const auto& e : change.update) batch.Put(envelopes_, id_key(e.id), encode(e));
    for (auto id : change.remove) {
      batch.Delete(envelopes_, id_key(id));
      batch.Delete(contents_, id_key(id));
      delete_parts(batch, id);
    }
    for (auto id : change.discard) {
      delete_parts(batch, id);
      std::lock_guard lock(parts_mu_);
      part_generation_.erase(id);
    }
  }

  void delete_parts(rocksdb::WriteBatch& batch, std::uint64_t id) {
    if (!parts_) return;
    std::string prefix = id_key(id);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), parts_));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
      batch.Delete(parts_, it->key());
  }

  // Parts whose message never got its envelope (the connection or tern died
  // before the commit): nothing was acknowledged for them.
  void drop_orphan_parts() {
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), parts_));
    std::uint64_t checked = 0;
    bool orphan = false;
    std::string ignored;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::uint64_t id = key_id(it->key());
      if (id != checked || checked == 0) {
        checked = id;
        orphan = db_->Get(rocksdb::ReadOptions(), envelopes_, id_key(id), &ignored).IsNotFound();
      }
      if (orphan) batch.Delete(parts_, it->key());
    }
    if (batch.Count() > 0) {
      spdlog::info("spool: dropping {} part(s) of messages that were never committed",
                   batch.Count());
      db_->Write(rocksdb::WriteOptions(), &batch);
    }
  }

  config::Spool cfg_;
  OpenMode mode_;
  RocksSpoolTuning tuning_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  rocksdb::ColumnFamilyHandle* envelopes_ = nullptr;
  rocksdb::ColumnFamilyHandle* contents_ = nullptr;
  rocksdb::ColumnFamilyHandle* parts_ = nullptr;
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
  std::uint64_t generation_ = 0;                   // under db_mu_: database closes so far
  std::mutex parts_mu_;
  // Streamed messages not yet committed: the generation of their first part.
  std::unordered_map<std::uint64_t, std::uint64_t> part_generation_;
  std::chrono::steady_clock::time_point last_resume_{};
};

}  // namespace

std::unique_ptr<Spool> open_rocksdb_spool(const config::Spool& config, OpenMode mode,
                                          const RocksSpoolTuning& tuning) {
  return std::make_unique<RocksSpool>(config, mode, tuning);
}

}  // namespace tern::queue
