// DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030): reading the message, then the
// headers tern adds (Received:, RFC 5321 §4.4; Message-ID: when missing) and
// the hand-over to the spool. The reply comes only after the spool has synced.
// On the way, the content passes through MessageAuth (message_auth.h): the
// header fields only tern may write are removed before the first part is
// stored, and the message is DKIM-signed or its sender checked. The prefix
// stored above the message is, from the top: DKIM-Signature (signing; it
// covers the message as sent on, not tern's Received) or
// Authentication-Results and X-Tern-Dmarc (checking), then Received, then the
// Message-ID tern adds (signed with the rest).
#include "server/session.h"
#include "smtp/headers.h"
#include "smtp/replies.h"
#include "util/random.h"
#include "util/text.h"

#include <chrono>

namespace tern::server {

using smtp::InputBuffer;
using smtp::Reply;
namespace replies = smtp::replies;

namespace {
// A message that has passed this many hops is looping (Postfix's hopcount_limit).
constexpr std::size_t kMaxReceivedHeaders = 50;
// A message bigger than this goes to the spool in parts of about this size as
// it arrives, so a connection holds at most one part (SPEC §4 Robustness).
constexpr std::size_t kPartSize = 256 * 1024;
constexpr std::size_t kMaxMessageIdLength = 998;
// The Message-ID echoed in the 250 reply: printable ASCII, bounded.
constexpr std::size_t kMaxEchoedMessageId = 200;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Step Session::cmd_data(std::string_view arg) {
  if (!arg.empty()) return answer(replies::kSyntaxError);
  if (!tx_.active || tx_.recipients.empty() || tx_.chunking) return answer(replies::kBadSequence);
  if (tx_.params.body == smtp::BodyType::kBinaryMime) return answer(replies::kBinaryNeedsBdat);
  decoder_.emplace(env_.listener->max_message_size);
  mode_ = Mode::kData;
  return answer(replies::kStartMailInput);
}

bool Session::should_store() const {
  return tx_.content.size() >= kPartSize && !tx_.too_big && !tx_.store_failed;
}

MessageAuth& Session::message_auth() {
  if (!tx_.auth) {
    auto mode = MessageAuth::Mode::kNone;
    if (may_relay()) {
      if (env_.dkim_keys && !env_.dkim_keys->empty()) mode = MessageAuth::Mode::kSign;
    } else if (env_.verify_senders) {
      mode = MessageAuth::Mode::kVerify;
    }
    std::string mail_from = tx_.sender.str();
    std::size_t at = mail_from.rfind('@');
    tx_.auth = std::make_shared<MessageAuth>(
        mode, env_.config->hostname, env_.dkim_keys.get(),
        at == std::string::npos ? std::string() : util::to_lower(mail_from.substr(at + 1)),
        std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
  }
  return *tx_.auth;
}

MessagePart Session::take_part() {
  if (tx_.id == 0) tx_.id = env_.spool->next_id();
  if (!tx_.headers) tx_.headers = smtp::scan_headers(tx_.content);
  tx_.content = message_auth().pass(std::move(tx_.content), false);
  MessagePart part{tx_.id, ++tx_.parts, std::move(tx_.content)};
  tx_.stored += part.bytes.size();
  tx_.content = std::string();
  return part;
}

Step Session::part_stored(const queue::CommitResult& result) {
  if (result.status != queue::SpoolStatus::kOk) {
    // The rest of the message is still read (to stay in step with the client)
    // but dropped; the reply at its end says why.
    tx_.store_failed = result.status;
    tx_.content.clear();
    if (env_.observer) env_.observer->info("spool refused a part of the message: " + result.error);
  }
  return {std::nullopt, Action::kContinue};
}

Step Session::read_data(InputBuffer& in) {
  std::size_t used = decoder_->feed(in.data(), tx_.content);
  in.consume(used);
  if (tx_.store_failed) tx_.content.clear();
  if (!decoder_->done()) {
    if (should_store()) return {std::nullopt, Action::kStore};
    return {std::nullopt, Action::kNeedInput};
  }
  mode_ = Mode::kCommand;
  if (env_.observer) env_.observer->info(std::to_string(decoder_->size()) + " octets of DATA");
  if (decoder_->too_big()) {
    reset_transaction();
    return answer(replies::kMessageTooBig);
  }
  if (decoder_->line_too_long()) {
    reset_transaction();
    return answer(replies::kDataLineTooLong);
  }
  if (tx_.store_failed) {
    bool no_space = *tx_.store_failed == queue::SpoolStatus::kNoSpace;
    reset_transaction();
    return answer(no_space ? replies::kInsufficientStorage : replies::kLocalError);
  }
  return finish_message();
}

Step Session::cmd_bdat(std::string_view arg) {
  std::vector<std::string_view> words;
  for (auto w : util::split(arg, ' '))
    if (!w.empty()) words.push_back(w);
  auto size = words.empty() ? std::nullopt : util::parse_uint(words[0]);
  if (!size || words.size() > 2 || (words.size() == 2 && !util::iequals(words[1], "LAST"))) {
    // Without a size, what follows cannot be told apart from commands: close.
    return {replies::kSyntaxError, Action::kClose};
  }
  chunk_remaining_ = chunk_size_ = *size;
  chunk_last_ = words.size() == 2;
  mode_ = Mode::kChunk;
  // The chunk is read in any case (RFC 3030 §3); an error is answered after it.
  // RFC 3030 §3 with checked arithmetic: a size near 2^64 must not wrap the sum.
  std::uint64_t limit = env_.listener->max_message_size;
  if (!tx_.active || tx_.recipients.empty()) {
    chunk_error_ = replies::kBadSequence;
  } else if (tx_.too_big || *size > limit || tx_.size() > limit - *size) {
    tx_.too_big = true;
    chunk_error_ = replies::kMessageTooBig;
  }
  if (!chunk_error_) tx_.chunking = true;
  return {std::nullopt, Action::kContinue};
}

Step Session::read_chunk(InputBuffer& in) {
  std::string_view data = in.data();
  std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_remaining_, data.size()));
  if (!chunk_error_ && !tx_.store_failed) tx_.content.append(data.substr(0, n));
  in.consume(n);
  chunk_remaining_ -= n;
  if (should_store()) return {std::nullopt, Action::kStore};
  if (chunk_remaining_ > 0) return {std::nullopt, Action::kNeedInput};
  mode_ = Mode::kCommand;
  if (chunk_error_) {
    Reply error = *chunk_error_;
    chunk_error_.reset();
    if (chunk_last_ && tx_.too_big) reset_transaction();
    return answer(error);
  }
  if (tx_.store_failed) {  // the transaction cannot succeed: end it now (RFC 3030 §2)
    bool no_space = *tx_.store_failed == queue::SpoolStatus::kNoSpace;
    reset_transaction();
    return answer(no_space ? replies::kInsufficientStorage : replies::kLocalError);
  }
  if (!chunk_last_) return answer(replies::chunk_received(chunk_size_));
  return finish_message();
}

std::string Session::received_header(std::uint64_t id) const {
  // "with" keywords of RFC 3848 and RFC 6531 §3.7.3.
  std::string with = extended_ ? "ESMTP" : "SMTP";
  if (tx_.params.smtputf8) with = "UTF8SMTP";
  if (env_.tls_active) with += "S";
  if (!auth_user_.empty()) with += "A";
  std::string h = "Received: from " + helo_ + " ([" + env_.client.address + "])\r\n\t";
  if (!tls_description_.empty()) h += "(using " + tls_description_ + ")\r\n\t";
  h += "by " + env_.config->hostname + " (tern) with " + with + " id " + std::to_string(id);
  if (tx_.recipients.size() == 1) h += "\r\n\tfor <" + tx_.recipients.front().address + ">";
  h += "; " + smtp::rfc5322_date_now() + "\r\n";
  return h;
}

Step Session::finish_message() {
  auto scan = tx_.headers ? *tx_.headers : smtp::scan_headers(tx_.content);
  MessageAuth& auth = message_auth();
  tx_.content = auth.pass(std::move(tx_.content), true);
  if (scan.received_count >= kMaxReceivedHeaders) {
    reset_transaction();
    return answer(replies::kRoutingLoop);
  }
  pending_ = queue::NewMessage{};
  auto& e = pending_.envelope;
  e.id = tx_.id ? tx_.id : env_.spool->next_id();
  pending_.parts = tx_.parts;
  pending_.prefix = received_header(e.id);
  std::string added;  // header fields tern adds to the message itself
  if (scan.message_id) {
    // Kept as sent (bytes), but no longer than a header line may be (RFC 5322 §2.1.1).
    e.message_id = scan.message_id->substr(0, kMaxMessageIdLength);
  } else {
    e.message_id = "<" + util::random_uuid() + "@" + env_.config->hostname + ">";
    added = "Message-ID: " + e.message_id + "\r\n";
    pending_.prefix += added;
  }
  if (auth.mode() == MessageAuth::Mode::kSign) {
    std::string signature = auth.signature(added);
    if (!signature.empty() && env_.observer)
      env_.observer->info("DKIM-signed for " + auth.signing_domain());
    pending_.prefix = signature + pending_.prefix;
  }
  e.sender = tx_.sender.str();
  e.recipients = std::move(tx_.recipients);
  e.ret = tx_.params.ret;
  e.envid = tx_.params.envid;
  e.body = tx_.params.body;
  e.smtputf8 = tx_.params.smtputf8;
  e.arrival_ms = e.next_attempt_ms = now_ms();
  e.client_address = env_.client.address;
  e.client_helo = helo_;
  e.listener = env_.listener->name;
  e.auth_user = auth_user_;
  pending_.content = std::move(tx_.content);
  e.size = pending_.prefix.size() + tx_.stored + pending_.content.size();
  if (auth.mode() == MessageAuth::Mode::kVerify) {
    SenderCheck check;
    check.dkim = auth.take_verifier();
    check.input.client_ip = env_.client.address;
    check.input.helo = helo_;
    check.input.mail_from = e.sender;
    check.input.from_domain = auth.from();
    check.input.from_unusable = auth.from_unusable();
    sender_check_ = std::move(check);
    return {std::nullopt, Action::kCheckSender};
  }
  return {std::nullopt, Action::kCommit};
}

SenderCheck Session::take_sender_check() {
  SenderCheck check = std::move(*sender_check_);
  sender_check_.reset();
  return check;
}

Step Session::sender_checked(const auth::SenderAuthVerdict& verdict) {
  using SenderAction = auth::SenderAuthVerdict::Action;
  std::string domain = tx_.auth ? tx_.auth->from() : std::string();
  if (verdict.action == SenderAction::kReject && env_.config->sender_auth.dmarc_reject) {
    // Nothing is stored: the parts already written are discarded.
    if (env_.observer) env_.observer->info("refused by DMARC: " + verdict.reason);
    pending_ = queue::NewMessage{};
    reset_transaction();
    return answer(replies::dmarc_reject(util::printable(domain, 253, util::Keep::kAscii)));
  }
  std::string top = verdict.header;
  if (verdict.action == SenderAction::kQuarantine) {
    top += "X-Tern-Dmarc: quarantine\r\n";
    if (env_.observer) env_.observer->info("DMARC quarantine: " + verdict.reason);
  }
  pending_.prefix = top + pending_.prefix;
  pending_.envelope.size += top.size();
  return {std::nullopt, Action::kCommit};
}

queue::NewMessage Session::take_message() {
  // The stored parts belong to the message from here on; if its commit fails,
  // committed() hands them back to be discarded.
  committing_parts_ = tx_.parts;
  tx_.parts = 0;
  committing_id_ = pending_.envelope.id;
  committing_message_id_ = pending_.envelope.message_id;
  return std::move(pending_);
}

Step Session::committed(const queue::CommitResult& result) {
  std::string message_id = std::move(committing_message_id_);
  std::uint64_t id = committing_id_;
  pending_ = queue::NewMessage{};
  if (result.status != queue::SpoolStatus::kOk && committing_parts_ > 0) abandoned_.push_back(id);
  committing_parts_ = 0;
  reset_transaction();
  switch (result.status) {
    case queue::SpoolStatus::kOk:
      ++messages_accepted_;
      return answer(
          replies::queued(util::printable(message_id, kMaxEchoedMessageId, util::Keep::kAscii), id,
                          env_.config->hostname));
    case queue::SpoolStatus::kNoSpace:
      return answer(replies::kInsufficientStorage);
    case queue::SpoolStatus::kError:
      break;
  }
  return answer(replies::kLocalError);
}

}  // namespace tern::server
