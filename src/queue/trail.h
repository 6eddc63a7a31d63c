// The message trail (SPEC §1 `tern trail`, §5 `GET /api/trail`): every event
// of every recipient of a message — RECEIVE, DEFER with the reply, DELIVER,
// SEND, FAIL, DSN — kept with the message in its spool and for a while after
// it leaves the queue, so that "where is this mail?" has an answer.
//
// Contract: record() never blocks an event loop for long and never fails a
// delivery (a trail that cannot be written is logged, the mail goes on);
// find() may block and is called off the event loops. Events come back oldest
// first.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tern::queue {

struct TrailEvent {
  std::int64_t time_ms = 0;  // Unix time in milliseconds
  std::string event;         // RECEIVE, DEFER, DELIVER, SEND, FAIL, DSN, …
  std::uint64_t id = 0;      // the InternalId
  std::string message_id;
  std::string sender;
  std::string recipient;
  std::string remote_host;
  std::string reply;
};

// What to look for: an InternalId, a Message-ID (with or without <>), or an
// address (sender or recipient, compared without regard to case).
struct TrailQuery {
  enum class Kind { kId, kMessageId, kAddress };
  Kind kind = Kind::kId;
  std::string value;
};

class Trail {
 public:
  virtual ~Trail() = default;
  // Matching events, oldest first (blocking).
  virtual std::vector<TrailEvent> find(const TrailQuery& query) = 0;
  // Keeps event: queued in memory and written by the trail's own thread with
  // others (never blocks for long; called from the event loops). A trail
  // opened only to read ignores it.
  virtual void record(TrailEvent /*event*/) {}
};

// What `tern trail ARG` (and GET /api/trail) looks for: digits are an
// InternalId, something with an @ and no <> or spaces an address, anything
// else a Message-ID.
TrailQuery trail_query(std::string_view argument);

// The forms the trail indexes and compares: addresses in lower case; a
// Message-ID without its <> and in lower case (what people paste varies).
std::string trail_address_key(std::string_view address);
std::string trail_message_id_key(std::string_view message_id);

// Whether event answers query (after the index found its message): an
// address query keeps the events of that address as sender or recipient, the
// message's events that name no recipient, and every event of a message whose
// Message-ID it is (one written without <> looks like an address).
bool trail_matches(const TrailEvent& event, const TrailQuery& query);

// Oldest first; equal times keep their order of arrival.
void sort_trail(std::vector<TrailEvent>& events);

// "2026-12-03T17:50:59.123Z".
std::string trail_time(std::int64_t time_ms);

// {"events": [{"time","event","recipient","remote_host","reply", …}, …]}, as
// `tern trail --json` prints it and `GET /api/trail` answers: "time" in ISO
// 8601 UTC with milliseconds; also "id", "message_id", "sender".
std::string trail_json(const std::vector<TrailEvent>& events);

}  // namespace tern::queue
