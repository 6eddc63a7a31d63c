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
};

// {"events": [{"time","event","recipient","remote_host","reply", …}, …]}, as
// `tern trail --json` prints it and `GET /api/trail` answers.
std::string trail_json(const std::vector<TrailEvent>& events);

}  // namespace tern::queue
