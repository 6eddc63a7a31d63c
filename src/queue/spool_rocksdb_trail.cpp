// The RocksDB spool's message trail (trail.h): events in the column family
// "trail" of the spool's own database (keys in spool_rocksdb_trail.h), written
// by the TrailWriter's thread in batches without a sync of their own (the
// spool's next synced commit makes them durable with it), found through the
// Message-ID and address indexes, expired by the 't' time index.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "queue/spool_rocksdb_impl.h"
#include "queue/spool_rocksdb_keys.h"
#include "queue/spool_rocksdb_trail.h"
#include "util/text.h"

namespace tern::queue::rocksdb_spool {

namespace {

void put_field(std::string& out, std::string_view s) {
  put_be(out, s.size(), 4);
  out += s;
}

bool get_field(std::string_view& in, std::string& s) {
  if (in.size() < 4) return false;
  std::uint64_t n = get_be(in, 0, 4);
  if (in.size() - 4 < n) return false;
  s.assign(in.substr(4, n));
  in.remove_prefix(4 + n);
  return true;
}

std::string_view view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

// Deletes per write while expiring: bounded memory for a large sweep.
constexpr std::size_t kExpireBatch = 10'000;

}  // namespace

std::string encode_trail_event(const TrailEvent& e) {
  std::string out;
  out.reserve(64 + e.message_id.size() + e.sender.size() + e.recipient.size() + e.reply.size());
  for (std::string_view f :
       {std::string_view(e.event), std::string_view(e.message_id), std::string_view(e.sender),
        std::string_view(e.recipient), std::string_view(e.remote_host), std::string_view(e.reply)})
    put_field(out, f);
  return out;
}

std::optional<TrailEvent> decode_trail_event(std::string_view key, std::string_view value) {
  if (key.size() != 1 + 8 + 8 + 4 || key[0] != 'e') return std::nullopt;
  TrailEvent e;
  e.id = get_be(key, 1, 8);
  e.time_ms = static_cast<std::int64_t>(get_be(key, 9, 8));
  for (std::string* f :
       {&e.event, &e.message_id, &e.sender, &e.recipient, &e.remote_host, &e.reply})
    if (!get_field(value, *f)) return std::nullopt;
  return e;
}

void RocksSpool::trail_write(const std::vector<TrailEvent>& events) {
  // Below the free-space floor the room left is for the bookkeeping of mail
  // already accepted: a full disk fails every write of the database.
  std::uint64_t size = 0;
  for (const auto& e : events) size += 64 + e.message_id.size() + e.reply.size();
  if (!has_room(size))
    throw std::runtime_error("free space below [spool] min_free: events dropped");
  std::shared_lock lock(db_mu_);
  if (!db_ || !trail_) throw std::runtime_error("the spool is closed after a write error");
  rocksdb::WriteBatch batch;
  std::set<std::string> indexed;
  for (const auto& e : events) {
    batch.Put(trail_, trail_event_key(e.id, e.time_ms, trail_seq_++), encode_trail_event(e));
    batch.Put(trail_, trail_time_key(e.time_ms, e.id), rocksdb::Slice());
    if (!e.message_id.empty())
      indexed.insert(trail_index_key('m', trail_message_id_key(e.message_id), e.id));
    for (const auto* a : {&e.sender, &e.recipient})
      if (!a->empty()) indexed.insert(trail_index_key('a', trail_address_key(*a), e.id));
  }
  for (const auto& k : indexed) batch.Put(trail_, k, rocksdb::Slice());
  // No sync: the WAL is shared, and the spool's next synced commit covers it.
  auto s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) throw std::runtime_error(failed_write(s).error);
}

// Under db_mu_ held shared: the ids an index holds for value.
std::vector<std::uint64_t> RocksSpool::trail_ids(char kind, std::string_view value) {
  std::vector<std::uint64_t> ids;
  std::string prefix = trail_index_prefix(kind, value);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), trail_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    if (it->key().size() == prefix.size() + 8)
      ids.push_back(get_be(view(it->key()), prefix.size(), 8));
  return ids;
}

std::vector<TrailEvent> RocksSpool::trail_find(const TrailQuery& query) {
  std::shared_lock lock(db_mu_);
  if (!db_) throw unavailable();
  if (!trail_) return {};
  std::vector<std::uint64_t> ids;
  std::string value(util::trim(query.value));
  switch (query.kind) {
    case TrailQuery::Kind::kId: {
      std::uint64_t id = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
      if (ec != std::errc() || end != value.data() + value.size()) return {};
      ids.push_back(id);
      break;
    }
    case TrailQuery::Kind::kMessageId:
      ids = trail_ids('m', trail_message_id_key(value));
      break;
    case TrailQuery::Kind::kAddress: {  // an address, or a Message-ID that looks like one
      ids = trail_ids('a', trail_address_key(value));
      auto more = trail_ids('m', trail_message_id_key(value));
      ids.insert(ids.end(), more.begin(), more.end());
      break;
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<TrailEvent> events;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), trail_));
  for (auto id : ids) {
    std::string prefix = trail_events_prefix(id);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      auto e = decode_trail_event(view(it->key()), view(it->value()));
      if (e && trail_matches(*e, query)) events.push_back(std::move(*e));
    }
  }
  sort_trail(events);
  return events;
}

// Trails whose newest event is older than cutoff_ms and whose message is no
// longer queued go, with their index keys. The 't' keys older than the cutoff
// are the candidates: one of a message whose trail goes on later is dropped
// (a newer one stands for it), one of a queued message stays for the next sweep.
void RocksSpool::trail_expire(std::int64_t cutoff_ms) {
  std::shared_lock lock(db_mu_);
  if (!db_ || !trail_) return;
  enum class Fate { kKeep, kDropKey };
  std::unordered_map<std::uint64_t, Fate> fate;
  rocksdb::WriteBatch batch;
  std::size_t messages = 0;
  auto flush = [&] {
    if (batch.Count() == 0) return;
    auto s = db_->Write(rocksdb::WriteOptions(), &batch);
    batch.Clear();
    if (!s.ok()) throw std::runtime_error(s.ToString());
  };
  std::string end = trail_time_key(cutoff_ms, 0);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), trail_));
  std::unique_ptr<rocksdb::Iterator> events(db_->NewIterator(rocksdb::ReadOptions(), trail_));
  std::string ignored;
  for (it->Seek("t"); it->Valid() && it->key().compare(end) < 0; it->Next()) {
    if (it->key().size() != 17) continue;
    std::uint64_t id = get_be(view(it->key()), 9, 8);
    auto known = fate.find(id);
    if (known == fate.end()) {
      Fate f = Fate::kDropKey;
      if (db_->Get(rocksdb::ReadOptions(), envelopes_, id_key(id), &ignored).ok()) {
        f = Fate::kKeep;  // still queued
      } else {
        std::string prefix = trail_events_prefix(id);
        std::vector<std::string> keys;
        std::set<std::string> index;
        std::int64_t newest = 0;
        for (events->Seek(prefix); events->Valid() && events->key().starts_with(prefix);
             events->Next()) {
          keys.emplace_back(view(events->key()));
          auto e = decode_trail_event(view(events->key()), view(events->value()));
          if (!e) continue;
          newest = std::max(newest, e->time_ms);
          if (!e->message_id.empty())
            index.insert(trail_index_key('m', trail_message_id_key(e->message_id), id));
          for (const auto* a : {&e->sender, &e->recipient})
            if (!a->empty()) index.insert(trail_index_key('a', trail_address_key(*a), id));
        }
        if (newest < cutoff_ms) {
          for (const auto& k : keys) batch.Delete(trail_, k);
          for (const auto& k : index) batch.Delete(trail_, k);
          ++messages;
        }
      }
      known = fate.emplace(id, f).first;
    }
    if (known->second == Fate::kDropKey) batch.Delete(trail_, it->key());
    if (batch.Count() >= kExpireBatch) flush();
  }
  flush();
  if (messages > 0) spdlog::info("trail: expired the trails of {} message(s)", messages);
}

}  // namespace tern::queue::rocksdb_spool
