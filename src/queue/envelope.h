// What the queue keeps about a message besides its content: the SMTP envelope
// (sender, recipients and their DSN requests, RFC 3461), where it came from,
// and each recipient's delivery state. Stored next to the body in the spool.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/params.h"

namespace tern::queue {

enum class RecipientState : std::uint8_t { kQueued, kDeferred, kDelivered, kRelayed, kFailed };
std::string_view state_name(RecipientState state);

struct Recipient {
  std::string address;      // as given in RCPT TO
  bool local = false;       // an accepted domain's mailbox (else relayed via MX)
  std::uint8_t notify = 0;  // smtp::notify bits; 0 = not given
  std::string orcpt_type;   // RFC 3461 ORCPT, kept to report in DSNs
  std::string orcpt;
  RecipientState state = RecipientState::kQueued;
  std::uint32_t attempts = 0;
  std::string last_reply;       // the last reply or reason, for tern queue show and DSNs
  std::string remote_host;      // where the last attempt went
  bool delay_notified = false;  // a delay DSN was sent
  bool done() const {
    return state == RecipientState::kDelivered || state == RecipientState::kRelayed ||
           state == RecipientState::kFailed;
  }
};

struct Envelope {
  std::uint64_t id = 0;    // InternalId
  std::string message_id;  // the Message-ID header value, "<...>"
  std::string sender;      // "" is the null reverse-path <>
  std::vector<Recipient> recipients;
  smtp::DsnRet ret = smtp::DsnRet::kUnspecified;
  std::string envid;
  smtp::BodyType body = smtp::BodyType::kUnspecified;
  bool smtputf8 = false;
  std::int64_t arrival_ms = 0;  // Unix time in milliseconds
  std::int64_t next_attempt_ms = 0;
  std::uint64_t size = 0;      // octets of the stored message
  std::string client_address;  // IP of the client that sent it
  std::string client_helo;
  std::string listener;
  std::string auth_user;  // empty when not authenticated
  bool is_dsn = false;    // a delivery status notification tern generated
  // Non-empty: the message is held (not delivered) for this reason until the
  // administrator releases it (tern queue retry) or removes it; set when its
  // processing failed inside tern, so one bad message never stops the server.
  std::string held;
};

std::string encode(const Envelope& env);
// Throws std::runtime_error for a record that does not decode (also one
// without recipients).
Envelope decode_envelope(std::string_view data);
// What stands for a record that does not decode (quarantined): held with the
// reason, no recipients; kept with its content until the administrator
// deletes it (tern queue delete).
Envelope unreadable_envelope(std::uint64_t id, std::string_view why);
// Every recipient still to do is one of ours (Maildir, LMTP): the scheduler's local lane.
inline bool only_local(const Envelope& e) {
  for (const auto& r : e.recipients)
    if (!r.done() && !r.local) return false;
  return true;
}

}  // namespace tern::queue
