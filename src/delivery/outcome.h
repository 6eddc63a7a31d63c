// The result of one delivery attempt for one recipient (DESIGN.md principle 5:
// failures are typed). Every outcome says whether it is final, how far it
// reaches (the whole connection, the host, the message, or this recipient),
// and carries the reply that explains it — the next hop's own reply when there
// was one, else one tern made up ("451 4.4.1 Connection refused by ...").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "smtp/reply.h"

namespace tern::delivery {

enum class Status { kDelivered, kTemporary, kPermanent };

// How far a failure reaches: a connection or host failure means "try the next
// MX host"; a message failure applies to every recipient of the message.
enum class Scope { kConnection, kHost, kMessage, kRecipient };

struct Outcome {
  Status status = Status::kTemporary;
  Scope scope = Scope::kRecipient;
  smtp::Reply reply;         // what explains it (code, enhanced code, text)
  std::string remote_host;   // "mx1.example.test[127.0.0.2]:25", "maildir", "lmtp 127.0.0.1:24"
  bool dsn_relayed = false;  // delivered to a next hop that does not support DSN (RFC 3461 §4.1)
  bool remote = false;       // the reply came from the next hop (not made up by tern)
  // tern itself failed (an exception) while delivering this recipient: the
  // outcome is temporary and the scheduler holds the message with the reason.
  bool internal = false;

  bool delivered() const { return status == Status::kDelivered; }
  bool temporary() const { return status == Status::kTemporary; }
  bool permanent() const { return status == Status::kPermanent; }

  static Outcome delivered_by(smtp::Reply reply, std::string host) {
    return {Status::kDelivered, Scope::kRecipient, std::move(reply), std::move(host), false, true};
  }
  static Outcome temporary_failure(Scope scope, smtp::Reply reply, std::string host = {}) {
    return {Status::kTemporary, scope, std::move(reply), std::move(host), false, false};
  }
  static Outcome permanent_failure(Scope scope, smtp::Reply reply, std::string host = {}) {
    return {Status::kPermanent, scope, std::move(reply), std::move(host), false, false};
  }
};

inline Outcome internal_failure(std::string_view what) {
  Outcome o = Outcome::temporary_failure(
      Scope::kMessage, smtp::Reply(451, "4.3.0", "Internal error in tern: " + std::string(what)));
  o.internal = true;
  return o;
}

// Outcome for the recipient at `index` in the envelope's recipient list.
struct RecipientOutcome {
  std::size_t index = 0;
  Outcome outcome;
};

}  // namespace tern::delivery
