#include "queue/spool_rocksdb.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

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

class RocksSpool final : public Spool {
 public:
  RocksSpool(const config::Spool& cfg, OpenMode mode) : cfg_(cfg), mode_(mode) {
    namespace fs = std::filesystem;
    rocksdb::Options options;
    options.create_if_missing = mode != OpenMode::kReadOnly;
    options.create_missing_column_families = mode != OpenMode::kReadOnly;
    options.max_log_file_size = 1 << 20;  // RocksDB's own info log
    options.keep_log_file_num = 3;
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
    // A spool written before parts existed has no such family: read-only opens
    // take what is there.
    std::vector<std::string> existing;
    bool has_parts = !rocksdb::DB::ListColumnFamilies(options, cfg.path.string(), &existing).ok() ||
                     std::find(existing.begin(), existing.end(), kParts) != existing.end();
    if (mode != OpenMode::kReadOnly || has_parts) families.push_back({kParts, parts});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s;
    if (mode == OpenMode::kReadOnly) {
      if (!fs::exists(cfg.path / "CURRENT"))
        throw std::runtime_error("no spool at " + cfg.path.string() + " (has tern serve run yet?)");
      s = rocksdb::DB::OpenForReadOnly(options, cfg.path.string(), families, &handles, &db);
    } else {
      std::error_code ec;
      fs::create_directories(cfg.path, ec);
      if (ec)
        throw std::runtime_error("cannot create spool folder " + cfg.path.string() + ": " +
                                 ec.message());
      s = rocksdb::DB::Open(options, cfg.path.string(), families, &handles, &db);
    }
    if (!s.ok()) {
      std::string why = s.ToString();
      if (why.find("lock") != std::string::npos ||
          why.find("Resource temporarily") != std::string::npos)
        why = "the spool is in use by another tern process (" + why + ")";
      throw std::runtime_error("cannot open spool " + cfg.path.string() + ": " + why);
    }
    db_.reset(db);
    default_ = handles[0];
    envelopes_ = handles[1];
    contents_ = handles[2];
    if (handles.size() > 3) parts_ = handles[3];
    init_next_id();
    if (mode == OpenMode::kServe) drop_orphan_parts();
    if (mode != OpenMode::kReadOnly) committer_ = std::thread([this] { commit_loop(); });
  }

  ~RocksSpool() override {
    close();
    for (auto* h : {default_, envelopes_, contents_, parts_})
      if (h) db_->DestroyColumnFamilyHandle(h);
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
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), envelopes_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      try {
        out.push_back(decode_envelope(std::string_view(it->value().data(), it->value().size())));
      } catch (const std::exception& e) {
        // Shown and held, never dropped: the administrator decides (tern queue delete).
        Envelope broken;
        broken.id = key_id(it->key());
        broken.message_id = "(unreadable envelope record)";
        broken.held = std::string("the envelope record cannot be read: ") + e.what();
        out.push_back(std::move(broken));
      }
    }
    return out;
  }

  std::optional<Envelope> find(std::uint64_t id) override {
    std::string value;
    auto s = db_->Get(rocksdb::ReadOptions(), envelopes_, id_key(id), &value);
    if (!s.ok()) return std::nullopt;
    return decode_envelope(value);
  }

  std::optional<std::string> content(std::uint64_t id) override {
    std::string value;
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
    if (mode_ == OpenMode::kReadOnly || !parts_) return {SpoolStatus::kError, "spool read-only"};
    if (!has_room(bytes.size()))
      return {SpoolStatus::kNoSpace, "free space below [spool] min_free"};
    rocksdb::WriteOptions wo;  // no sync: the commit's sync covers it (one WAL)
    auto s = db_->Put(wo, parts_, part_key(id, seq), rocksdb::Slice(bytes.data(), bytes.size()));
    if (!s.ok()) return {status_of(s), s.ToString()};
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
    if (mode_ != OpenMode::kReadOnly && db_) db_->FlushWAL(true);
  }

 private:
  struct Pending {
    SpoolChange change;
    CommitCallback done;
  };

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

  CommitResult write_batch(rocksdb::WriteBatch& batch) {
    if (needs_resume_) {
      if (db_->Resume().ok()) needs_resume_ = false;
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto s = db_->Write(wo, &batch);
    if (!s.ok()) {
      needs_resume_ = true;
      return {status_of(s), s.ToString()};
    }
    return {};
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
      CommitResult result;
      // A change that cannot be put into the batch fails alone; the others
      // still share the sync. Nothing thrown here may end this thread.
      std::vector<std::optional<CommitResult>> refused(items.size());
      rocksdb::WriteBatch batch;
      for (std::size_t i = 0; i < items.size(); ++i) {
        bool adds_new_mail = false;
        for (const auto& m : items[i].change.add) adds_new_mail |= !m.envelope.is_dsn;
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
      if (max_id > 0) batch.Put(default_, kNextIdKey, id_key(max_id + 1));
      if (batch.Count() > 0) result = write_batch(batch);
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
    for (auto id : change.discard) delete_parts(batch, id);
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

  bool needs_resume_ = false;  // only the committer thread writes
};

}  // namespace

std::unique_ptr<Spool> open_rocksdb_spool(const config::Spool& config, OpenMode mode) {
  return std::make_unique<RocksSpool>(config, mode);
}

}  // namespace tern::queue
