// DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030): reading the message, then the
// headers tern adds (Received:, RFC 5321 §4.4; Message-ID: when missing) and
// the hand-over to the spool. The reply comes only after the spool has synced.
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

Step Session::read_data(InputBuffer& in) {
  std::size_t used = decoder_->feed(in.data(), tx_.content);
  in.consume(used);
  if (!decoder_->done()) return {std::nullopt, Action::kNeedInput};
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
  if (!tx_.active || tx_.recipients.empty()) {
    chunk_error_ = replies::kBadSequence;
  } else if (tx_.too_big || tx_.content.size() + *size > env_.listener->max_message_size) {
    tx_.too_big = true;
    chunk_error_ = replies::kMessageTooBig;
  }
  if (!chunk_error_) tx_.chunking = true;
  return {std::nullopt, Action::kContinue};
}

Step Session::read_chunk(InputBuffer& in) {
  std::string_view data = in.data();
  std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_remaining_, data.size()));
  if (!chunk_error_) tx_.content.append(data.substr(0, n));
  in.consume(n);
  chunk_remaining_ -= n;
  if (chunk_remaining_ > 0) return {std::nullopt, Action::kNeedInput};
  mode_ = Mode::kCommand;
  if (chunk_error_) {
    Reply error = *chunk_error_;
    chunk_error_.reset();
    if (chunk_last_ && tx_.too_big) reset_transaction();
    return answer(error);
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
  auto scan = smtp::scan_headers(tx_.content);
  if (scan.received_count >= kMaxReceivedHeaders) {
    reset_transaction();
    return answer(replies::kRoutingLoop);
  }
  pending_ = queue::NewMessage{};
  auto& e = pending_.envelope;
  e.id = env_.spool->next_id();
  pending_.prefix = received_header(e.id);
  if (scan.message_id) {
    e.message_id = *scan.message_id;
  } else {
    e.message_id = "<" + util::random_uuid() + "@" + env_.config->hostname + ">";
    pending_.prefix += "Message-ID: " + e.message_id + "\r\n";
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
  e.size = pending_.prefix.size() + tx_.content.size();
  pending_.content = std::move(tx_.content);
  return {std::nullopt, Action::kCommit};
}

queue::NewMessage Session::take_message() {
  committing_id_ = pending_.envelope.id;
  committing_message_id_ = pending_.envelope.message_id;
  return std::move(pending_);
}

Step Session::committed(const queue::CommitResult& result) {
  std::string message_id = std::move(committing_message_id_);
  std::uint64_t id = committing_id_;
  pending_ = queue::NewMessage{};
  reset_transaction();
  switch (result.status) {
    case queue::SpoolStatus::kOk:
      ++messages_accepted_;
      return answer(replies::queued(message_id, id, env_.config->hostname));
    case queue::SpoolStatus::kNoSpace:
      return answer(replies::kInsufficientStorage);
    case queue::SpoolStatus::kError:
      break;
  }
  return answer(replies::kLocalError);
}

}  // namespace tern::server
