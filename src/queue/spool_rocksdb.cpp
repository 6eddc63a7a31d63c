// The RocksDB spool: opening the database and its column families, ids, reads,
// streamed parts and close. The committer is in spool_rocksdb_commit.cpp, write
// errors and recovery in spool_rocksdb_recovery.cpp; the class in spool_rocksdb_impl.h.
#include "queue/spool_rocksdb.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "queue/spool_rocksdb_impl.h"
#include "queue/spool_rocksdb_keys.h"
#include "queue/spool_rocksdb_trail.h"

namespace tern::queue {

namespace rocksdb_spool {

RocksSpool::RocksSpool(const config::Spool& cfg, OpenMode mode, const RocksSpoolTuning& tuning)
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
  if (tuning_.trail_ms > 0) {
    trail_view_ = std::make_unique<RocksTrail>(*this);
    if (mode != OpenMode::kReadOnly)  // kAdmin: the queue tools' own events
      trail_writer_ = std::make_unique<TrailWriter>(
          tuning_.trail_ms, [this](const auto& events) { trail_write(events); },
          [this](std::int64_t cutoff) { trail_expire(cutoff); });
  }
}

RocksSpool::~RocksSpool() {
  close();
  std::unique_lock lock(db_mu_);
  close_db();
}

std::uint64_t RocksSpool::next_id() {
  return next_id_.fetch_add(1);
}

bool RocksSpool::has_room(std::uint64_t size) {
  struct statvfs st {};
  if (statvfs(cfg_.path.c_str(), &st) != 0) return true;  // cannot tell: let the write decide
  std::uint64_t free = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  return free >= cfg_.min_free + size;
}

void RocksSpool::apply(SpoolChange change, CommitCallback done) {
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

std::vector<Envelope> RocksSpool::list() {
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

bool RocksSpool::was_picked_up(const std::string& name) {
  std::string value;
  std::shared_lock lock(db_mu_);
  if (!db_) throw unavailable();
  return db_->Get(rocksdb::ReadOptions(), default_, pickup_key(name), &value).ok();
}

std::vector<std::string> RocksSpool::picked_up_names() {
  std::vector<std::string> out;
  std::shared_lock lock(db_mu_);
  if (!db_) throw unavailable();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), default_));
  for (it->Seek(std::string(kPickupPrefix));
       it->Valid() &&
       it->key().starts_with(rocksdb::Slice(kPickupPrefix.data(), kPickupPrefix.size()));
       it->Next())
    out.emplace_back(it->key().ToString().substr(kPickupPrefix.size()));
  return out;
}

std::optional<Envelope> RocksSpool::find(std::uint64_t id) {
  std::string value;
  std::shared_lock lock(db_mu_);
  if (!db_) throw unavailable();
  auto s = db_->Get(rocksdb::ReadOptions(), envelopes_, id_key(id), &value);
  if (!s.ok()) return std::nullopt;
  return decode_envelope(value);
}

std::optional<std::string> RocksSpool::content(std::uint64_t id) {
  std::string value;
  std::shared_lock lock(db_mu_);
  if (!db_) throw unavailable();
  auto s = db_->Get(rocksdb::ReadOptions(), contents_, id_key(id), &value);
  if (!s.ok()) return std::nullopt;
  if (!parts_) return value;
  // A streamed message has part 1 (parts count from 1); most messages have
  // none, and a point lookup costs much less than an iterator over the family.
  rocksdb::PinnableSlice first;
  if (db_->Get(rocksdb::ReadOptions(), parts_, part_key(id, 1), &first).IsNotFound()) return value;
  // prefix, then the parts in order; the last part is the tail of the message.
  std::string prefix = id_key(id);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), parts_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    value.append(it->value().data(), it->value().size());
  return value;
}

CommitResult RocksSpool::store_part(std::uint64_t id, std::uint32_t seq, std::string_view bytes) {
  if (mode_ == OpenMode::kReadOnly) return {SpoolStatus::kError, "spool read-only"};
  if (!has_room(bytes.size())) return {SpoolStatus::kNoSpace, "free space below [spool] min_free"};
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

void RocksSpool::close() {
  {
    std::lock_guard lock(mu_);
    if (closing_) return;
    closing_ = true;
    cv_.notify_one();
  }
  if (committer_.joinable()) committer_.join();
  if (trail_writer_) trail_writer_->stop();  // what is queued goes before the last WAL flush
  std::shared_lock lock(db_mu_);
  if (mode_ != OpenMode::kReadOnly && db_) db_->FlushWAL(true);
}

SpoolUnavailable RocksSpool::unavailable() {
  return SpoolUnavailable(
      "the spool is closed after a write error and could not be reopened yet; it tries again "
      "on the next write");
}

void RocksSpool::init_next_id() {
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
rocksdb::Status RocksSpool::open_db() {
  rocksdb::Options options;
  options.create_if_missing = mode_ != OpenMode::kReadOnly;
  options.create_missing_column_families = mode_ != OpenMode::kReadOnly;
  options.info_log = make_info_log();
  if (tuning_.env) options.env = tuning_.env;
  options.listeners.push_back(make_manual_recovery());
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
  // The message trail: small values, written often, read rarely.
  rocksdb::ColumnFamilyOptions trail;
  trail.write_buffer_size = 16 << 20;
  std::vector<std::string> existing;
  bool listed = rocksdb::DB::ListColumnFamilies(options, cfg_.path.string(), &existing).ok();
  auto has = [&](const char* name) {
    return !listed || std::find(existing.begin(), existing.end(), name) != existing.end();
  };
  bool has_parts = has(kParts);
  if (mode_ != OpenMode::kReadOnly || has_parts) families.push_back({kParts, parts});
  bool with_trail = mode_ != OpenMode::kReadOnly || has(kTrail);
  if (with_trail) families.push_back({kTrail, trail});
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
  std::size_t next = 3;
  if (mode_ != OpenMode::kReadOnly || has_parts) parts_ = handles[next++];
  if (with_trail) trail_ = handles[next++];
  return s;
}

// Under db_mu_ held exclusively. Unsynced writes (streamed parts) may be
// lost with the database: a new generation starts.
void RocksSpool::close_db() {
  if (!db_) return;
  ++generation_;
  for (auto* h : {default_, envelopes_, contents_, parts_, trail_})
    if (h) db_->DestroyColumnFamilyHandle(h);
  default_ = envelopes_ = contents_ = parts_ = trail_ = nullptr;
  db_->Close().PermitUncheckedError();
  db_.reset();
}

// Parts whose message never got its envelope (the connection or tern died
// before the commit): nothing was acknowledged for them.
void RocksSpool::drop_orphan_parts() {
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
    spdlog::info("spool: dropping {} part(s) of messages that were never committed", batch.Count());
    db_->Write(rocksdb::WriteOptions(), &batch);
  }
}

}  // namespace rocksdb_spool

std::unique_ptr<Spool> open_rocksdb_spool(const config::Spool& config, OpenMode mode,
                                          const RocksSpoolTuning& tuning) {
  return std::make_unique<rocksdb_spool::RocksSpool>(config, mode, tuning);
}

}  // namespace tern::queue
