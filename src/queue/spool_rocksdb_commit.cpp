// The RocksDB spool's committer: one thread turns every pending SpoolChange into
// one WriteBatch and one synced write (group commit). A change that cannot go
// into the batch fails alone; the free-space floor refuses new mail only.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>

#include "log/metrics.h"
#include "queue/spool_rocksdb_impl.h"
#include "queue/spool_rocksdb_keys.h"

namespace tern::queue::rocksdb_spool {

// Under db_mu_ held shared. Whether the parts of a streamed message were all
// stored since the last reopen: parts are written without a sync, so a
// reopen after an error may have lost some, and the message would be
// stored truncated. Forgets the message's parts generation either way.
bool RocksSpool::parts_intact(const NewMessage& m) {
  std::lock_guard lock(parts_mu_);
  auto it = part_generation_.find(m.envelope.id);
  if (it == part_generation_.end()) return false;
  bool same = it->second == generation_;
  part_generation_.erase(it);
  return same;
}

// The committer: everything pending goes into one WriteBatch and one sync.
void RocksSpool::commit_loop() {
  std::vector<Pending> items;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !pending_.empty() || closing_; });
      if (pending_.empty() && closing_) return;
      items.swap(pending_);
    }
    const auto started = std::chrono::steady_clock::now();  // tern_spool_commit_seconds
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
    std::vector<std::string> picked_up;
    for (std::size_t i = 0; i < items.size(); ++i)
      if (!refused[i]) {
        for (const auto& m : items[i].change.add) added.push_back(m.envelope.id);
        for (const auto& n : items[i].change.picked_up) picked_up.push_back(n);
      }
    if (!db_) {
      result = {SpoolStatus::kError, "the spool could not be reopened after a write error"};
    } else {
      if (max_id > 0) batch.Put(default_, kNextIdKey, id_key(max_id + 1));
      if (batch.Count() > 0) result = write_batch(batch, added, picked_up);
    }
    db_lock.unlock();
    log::metrics().spool_commit.observe_since(started);
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

void RocksSpool::add_to_batch(rocksdb::WriteBatch& batch, const SpoolChange& change) {
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
  for (const auto& name : change.picked_up) batch.Put(default_, pickup_key(name), "");
  for (const auto& name : change.forget_picked_up) batch.Delete(default_, pickup_key(name));
  for (auto id : change.discard) {
    delete_parts(batch, id);
    std::lock_guard lock(parts_mu_);
    part_generation_.erase(id);
  }
}

void RocksSpool::delete_parts(rocksdb::WriteBatch& batch, std::uint64_t id) {
  if (!parts_) return;
  std::string prefix = id_key(id);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), parts_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    batch.Delete(parts_, it->key());
}

}  // namespace tern::queue::rocksdb_spool
