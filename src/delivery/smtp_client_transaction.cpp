// delivery::Transaction: MAIL, RCPT, DATA/BDAT and the outcome of each
// recipient (see smtp_client_transaction.h). Classification, as in
// smtp_client.h: MAIL 5xx → permanent kMessage, MAIL 4xx → temporary kHost,
// RCPT replies → their recipient, the final reply → every accepted recipient
// (kMessage), or with LMTP one reply per accepted recipient (RFC 2033 §4.2),
// a 421 anywhere → temporary kHost for all still open (the peer is closing).
#include "delivery/smtp_client_transaction.h"

#include "delivery/smtp_client_wire.h"

namespace tern::delivery {

namespace {

constexpr std::size_t kContentPiece = 256 * 1024;  // octets per write of the content

}  // namespace

net::awaitable<std::vector<RecipientOutcome>> Transaction::run(
    const queue::Envelope& envelope, const std::vector<std::size_t>& recipients,
    std::string_view content) {
  outcomes_.assign(recipients.size(), std::nullopt);
  bool binary = envelope.body == smtp::BodyType::kBinaryMime;
  if (auto refusal = refusal_before_mail(envelope, recipients, content, peer_, peer_name_)) {
    for (std::size_t i = 0; i < recipients.size(); ++i)
      settle(i, Outcome::permanent_failure(Scope::kMessage, *refusal, peer_name_));
    clean_ = true;  // nothing was sent
  } else if (recipients.empty()) {
    clean_ = true;
  } else {
    bool go = false;
    if (peer_.pipelining)
      go = co_await envelope_pipelined(envelope, recipients, content.size(), !binary);
    else
      go = co_await envelope_one_by_one(envelope, recipients, content.size(), !binary);
    if (go) co_await transfer(content, binary);
  }
  std::vector<RecipientOutcome> out;
  out.reserve(recipients.size());
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    // Every path settles every recipient; the fallback only guards the invariant.
    out.push_back(
        {recipients[i],
         outcomes_[i].value_or(Outcome::temporary_failure(
             Scope::kConnection, smtp::Reply(451, "4.3.0", "No outcome recorded"), peer_name_))});
  }
  co_return out;
}

net::awaitable<bool> Transaction::envelope_pipelined(const queue::Envelope& envelope,
                                                     const std::vector<std::size_t>& recipients,
                                                     std::uint64_t size, bool with_data) {
  // RFC 2920 §3.1: MAIL, every RCPT and DATA in one write, replies in order.
  std::string batch = mail_command(envelope, peer_, size);
  for (std::size_t index : recipients) batch += rcpt_command(envelope.recipients[index], peer_);
  if (with_data) batch += "DATA\r\n";
  bool sent = co_await write(batch, options_.timeouts.command, "MAIL FROM and RCPT TO");
  if (!sent) co_return false;
  auto mail = co_await read(options_.timeouts.command, "the reply to MAIL FROM");
  if (!mail) co_return false;
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    auto reply = co_await read(options_.timeouts.command, "the reply to RCPT TO");
    if (!reply) co_return false;
    if (mail->positive()) recipient_replied(i, *reply);  // else 503s: MAIL decides
  }
  if (with_data) {
    data_reply_ = co_await read(options_.timeouts.data_init, "the reply to DATA");
    if (!data_reply_) co_return false;
  }
  if (!mail->positive()) {
    mail_refused(*mail);
    co_await abandon();
    co_return false;
  }
  co_return true;
}

net::awaitable<bool> Transaction::envelope_one_by_one(const queue::Envelope& envelope,
                                                      const std::vector<std::size_t>& recipients,
                                                      std::uint64_t size, bool with_data) {
  auto mail = co_await exchange(mail_command(envelope, peer_, size), options_.timeouts.command,
                                "MAIL FROM");
  if (!mail) co_return false;
  if (!mail->positive()) {
    mail_refused(*mail);
    co_await abandon();
    co_return false;
  }
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    auto reply = co_await exchange(rcpt_command(envelope.recipients[recipients[i]], peer_),
                                   options_.timeouts.command, "RCPT TO");
    if (!reply) co_return false;
    recipient_replied(i, *reply);
  }
  if (accepted_.empty()) {
    co_await abandon();
    co_return false;
  }
  if (with_data) {
    data_reply_ = co_await exchange("DATA\r\n", options_.timeouts.data_init, "DATA");
    if (!data_reply_) co_return false;
  }
  co_return true;
}

net::awaitable<void> Transaction::transfer(std::string_view content, bool binary) {
  if (accepted_.empty()) {  // pipelined: DATA went out before the RCPT replies came
    co_await abandon();
    co_return;
  }
  if (binary) {  // RFC 3030 §2: one chunk, the whole message, no dot-stuffing
    std::string command = "BDAT " + std::to_string(content.size()) + " LAST\r\n";
    bool sent = co_await send_content(command, content, true);
    if (!sent) co_return;
  } else {
    if (data_reply_->code != 354) {
      for (std::size_t position : accepted_)
        settle(position, peer_failure(*data_reply_, Scope::kMessage));
      co_await abandon();
      co_return;
    }
    bool sent = co_await send_content({}, content, false);
    if (!sent) co_return;
  }
  co_await final_replies();
}

net::awaitable<bool> Transaction::send_content(std::string_view command, std::string_view content,
                                               bool binary) {
  if (!command.empty()) {
    bool sent = co_await write(command, options_.timeouts.command, "BDAT");
    if (!sent) co_return false;
  }
  // The transcript gets a note instead of the message itself.
  connection_.set_transcript({});
  if (options_.transcript)
    options_.transcript(Direction::kSent,
                        "(message content, " + std::to_string(content.size()) + " octets)");
  bool ok = true, refused = false;
  // The piece that completes the transaction goes out only if may_commit agrees.
  auto may_finish = [&] {
    refused = options_.may_commit && !options_.may_commit();
    return !refused;
  };
  if (binary) {
    for (std::size_t pos = 0; ok && pos < content.size(); pos += kContentPiece) {
      if (pos + kContentPiece >= content.size() && !may_finish()) break;
      ok = co_await connection_.send(content.substr(pos, kContentPiece),
                                     options_.timeouts.data_block);
    }
  } else {
    DotStuffer stuffer(content);
    std::string piece;
    while (ok && !stuffer.done()) {
      stuffer.next(piece, kContentPiece);
      if (stuffer.done() && !may_finish()) break;
      ok = co_await connection_.send(piece, options_.timeouts.data_block);
    }
  }
  connection_.set_transcript(options_.transcript);
  if (refused) {
    lost(Outcome::temporary_failure(Scope::kConnection, lease_lost_reply(peer_name_), peer_name_));
    co_return false;
  }
  if (!ok) {
    lost(Outcome::temporary_failure(
        Scope::kConnection, send_failed_reply(peer_name_, "the message content"), peer_name_));
    co_return false;
  }
  if (!binary && options_.transcript) options_.transcript(Direction::kSent, ".");
  co_return true;
}

net::awaitable<void> Transaction::final_replies() {
  constexpr std::string_view kWaitingFor = "the reply to the end of data";
  if (!options_.lmtp) {
    auto reply = co_await read(options_.timeouts.data_done, kWaitingFor);
    if (!reply) co_return;
    for (std::size_t position : accepted_) settle(position, final_outcome(*reply, Scope::kMessage));
  } else {
    for (std::size_t position : accepted_) {  // RFC 2033 §4.2: in RCPT order
      auto reply = co_await read(options_.timeouts.data_done, kWaitingFor);
      if (!reply) co_return;
      settle(position, final_outcome(*reply, Scope::kRecipient));
    }
  }
  clean_ = true;
}

net::awaitable<void> Transaction::abandon() {
  if (data_reply_ && data_reply_->code == 354) {
    // The peer took DATA although no recipient (or MAIL) was accepted: an
    // empty message ends it, and there is nobody to deliver it to.
    bool sent = co_await write(".\r\n", options_.timeouts.data_block, "the end of data");
    if (!sent) co_return;
    auto reply = co_await read(options_.timeouts.data_done, "the reply to the end of data");
    if (!reply) co_return;
  }
  auto reply = co_await exchange("RSET\r\n", options_.timeouts.command, "RSET");
  clean_ = reply && reply->positive();
}

net::awaitable<std::optional<smtp::Reply>> Transaction::read(Millis timeout,
                                                             std::string_view waiting_for) {
  auto result = co_await connection_.read_reply(timeout);
  if (!result.reply) {
    lost(Outcome::temporary_failure(Scope::kConnection, lost_reply(result, peer_name_, waiting_for),
                                    peer_name_));
    co_return std::nullopt;
  }
  if (result.reply->code == 421) {  // RFC 5321 §3.8: the peer is closing the session
    lost(peer_failure(*result.reply, Scope::kHost));
    co_return std::nullopt;
  }
  co_return result.reply;
}

net::awaitable<bool> Transaction::write(std::string_view bytes, Millis timeout,
                                        std::string_view what) {
  bool sent = co_await connection_.send(bytes, timeout);
  if (!sent)
    lost(Outcome::temporary_failure(Scope::kConnection, send_failed_reply(peer_name_, what),
                                    peer_name_));
  co_return sent;
}

net::awaitable<std::optional<smtp::Reply>> Transaction::exchange(std::string_view line,
                                                                 Millis timeout,
                                                                 std::string_view verb) {
  bool sent = co_await write(line, timeout, verb);
  if (!sent) co_return std::nullopt;
  co_return co_await read(timeout, "the reply to " + std::string(verb));
}

void Transaction::recipient_replied(std::size_t position, const smtp::Reply& reply) {
  if (reply.reply_class() == 2)
    accepted_.push_back(position);
  else
    settle(position, peer_failure(reply, Scope::kRecipient));
}

void Transaction::mail_refused(const smtp::Reply& reply) {
  // 5xx: this message (its sender, size, parameters) is refused; 4xx: the
  // host cannot take mail now, another MX host may.
  Outcome outcome = peer_failure(reply, reply.permanent_failure() ? Scope::kMessage : Scope::kHost);
  for (std::size_t i = 0; i < outcomes_.size(); ++i) settle(i, outcome);
}

Outcome Transaction::final_outcome(const smtp::Reply& reply, Scope scope) const {
  if (reply.reply_class() != 2) return peer_failure(reply, scope);
  Outcome outcome = Outcome::delivered_by(reply, peer_name_);
  outcome.dsn_relayed = !peer_.dsn;  // RFC 3461 §4.1: "relayed" when DSN stops here
  return outcome;
}

Outcome Transaction::peer_failure(const smtp::Reply& reply, Scope scope) const {
  // Anything but 5xx (4xx, or a reply that makes no sense here) may change.
  Outcome outcome = reply.permanent_failure()
                        ? Outcome::permanent_failure(scope, reply, peer_name_)
                        : Outcome::temporary_failure(scope, reply, peer_name_);
  outcome.remote = true;
  return outcome;
}

void Transaction::lost(Outcome outcome) {
  broken_ = true;
  for (std::size_t i = 0; i < outcomes_.size(); ++i) settle(i, outcome);
  connection_.close();
}

void Transaction::settle(std::size_t position, Outcome outcome) {
  if (!outcomes_[position]) outcomes_[position] = std::move(outcome);
}

}  // namespace tern::delivery
