// The PostgreSQL spool's message trail (trail.h): rows of table `trail`
// (schema version 2, spool_postgres_sql.h), inserted a batch at a time by the
// TrailWriter's thread on a connection of its own with synchronous_commit off
// (a lost last moment of trail never costs a delivery a flush), found through
// the indexes on the message, its Message-ID and the addresses, expired once
// a message has left the queue and its newest event is older than [log] trail.
#include <spdlog/spdlog.h>

#include <charconv>

#include "queue/spool_postgres_impl.h"
#include "queue/spool_postgres_sql.h"
#include "util/text.h"

namespace tern::queue::postgres_spool {

void PgSpool::trail_write(const std::vector<TrailEvent>& events) {
  std::vector<std::int64_t> ids, times;
  std::vector<std::optional<std::string>> kinds, message_ids, senders, recipients, remotes, replies,
      message_keys, sender_keys, recipient_keys;
  for (const auto& e : events) {
    ids.push_back(static_cast<std::int64_t>(e.id));
    times.push_back(e.time_ms);
    kinds.emplace_back(e.event);
    message_ids.emplace_back(e.message_id);
    senders.emplace_back(e.sender);
    recipients.emplace_back(e.recipient);
    remotes.emplace_back(e.remote_host);
    replies.emplace_back(e.reply);
    message_keys.emplace_back(trail_message_id_key(e.message_id));
    sender_keys.emplace_back(trail_address_key(e.sender));
    recipient_keys.emplace_back(trail_address_key(e.recipient));
  }
  trail_.run({sql::kAddTrail,
              {pg::bigint_array(ids), pg::bigint_array(times), pg::text_array_binary(kinds),
               pg::text_array_binary(message_ids), pg::text_array_binary(senders),
               pg::text_array_binary(recipients), pg::text_array_binary(remotes),
               pg::text_array_binary(replies), pg::text_array_binary(message_keys),
               pg::text_array_binary(sender_keys), pg::text_array_binary(recipient_keys)},
              false});
}

std::vector<TrailEvent> PgSpool::trail_find(const TrailQuery& query) {
  std::string value(util::trim(query.value));
  pg::Query q;
  switch (query.kind) {
    case TrailQuery::Kind::kId: {
      std::int64_t id = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
      if (ec != std::errc() || end != value.data() + value.size()) return {};
      q = {sql::kTrailById, {pg::number(id)}, false};
      break;
    }
    case TrailQuery::Kind::kMessageId:
      q = {sql::kTrailByMessageId, {pg::text(pg::valid_text(trail_message_id_key(value)))}, false};
      break;
    case TrailQuery::Kind::kAddress:
      q = {sql::kTrailByAddress,
           {pg::text(pg::valid_text(trail_address_key(value))),
            pg::text(pg::valid_text(trail_message_id_key(value)))},
           false};
      break;
  }
  std::vector<TrailEvent> events;
  try {
    auto r = reads_.run(q);
    for (int i = 0; i < r.rows(); ++i) {
      TrailEvent e;
      e.id = static_cast<std::uint64_t>(r.integer(i, 0));
      e.time_ms = r.integer(i, 1);
      e.event = r.string(i, 2);
      e.message_id = r.string(i, 3);
      e.sender = r.string(i, 4);
      e.recipient = r.string(i, 5);
      e.remote_host = r.string(i, 6);
      e.reply = r.string(i, 7);
      if (trail_matches(e, query)) events.push_back(std::move(e));
    }
  } catch (const pg::ConnectionLost& e) {
    throw SpoolUnavailable(e.what());
  }
  sort_trail(events);
  return events;
}

void PgSpool::trail_expire(std::int64_t cutoff_ms) {
  auto r = trail_.run({sql::kExpireTrail, {pg::number(cutoff_ms)}, false});
  if (r.affected() > 0) spdlog::info("trail: expired {} event(s)", r.affected());
}

}  // namespace tern::queue::postgres_spool
