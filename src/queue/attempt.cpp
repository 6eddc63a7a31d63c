#include "queue/attempt.h"

#include <algorithm>

#include "smtp/address.h"

namespace tern::queue {

namespace {

std::string status_of(const smtp::Reply& reply, const char* fallback) {
  return reply.enhanced.empty() ? fallback : reply.enhanced;
}

// "mx1.example.test[127.0.0.2]:25" → "mx1.example.test" for Remote-MTA.
std::string host_name(const std::string& remote) {
  auto bracket = remote.find('[');
  return bracket == std::string::npos ? remote : remote.substr(0, bracket);
}

DsnRecipient dsn_recipient(std::size_t index, DsnAction action, const Recipient& r,
                           std::int64_t now_ms, const smtp::Reply* reply = nullptr) {
  DsnRecipient d;
  d.index = index;
  d.action = action;
  d.diagnostic = r.last_reply;
  d.remote_mta = r.local ? "" : host_name(r.remote_host);  // Remote-MTA names a DNS host
  d.last_attempt_ms = now_ms;
  const char* fallback = action == DsnAction::kFailed    ? "5.0.0"
                         : action == DsnAction::kDelayed ? "4.0.0"
                                                         : "2.0.0";
  d.status = reply ? status_of(*reply, fallback) : fallback;
  return d;
}

}  // namespace

void AttemptRecorder::apply(Envelope& env, const std::vector<delivery::RecipientOutcome>& outcomes,
                            std::int64_t now_ms, std::vector<DsnRecipient>& failed,
                            std::vector<DsnRecipient>& success, AttemptResult& result) {
  for (const auto& o : outcomes) {
    Recipient& r = env.recipients.at(o.index);
    const auto& out = o.outcome;
    ++r.attempts;
    r.last_reply = out.reply.summary();
    r.remote_host = out.remote_host;
    TrackingRecord t{"", env.id, r.address, out.remote_host, r.last_reply};
    if (out.delivered()) {
      r.state = r.local ? RecipientState::kDelivered : RecipientState::kRelayed;
      t.event = r.local ? "DELIVER" : "SEND";
      DsnAction action = r.local ? DsnAction::kDelivered : DsnAction::kRelayed;
      // A next hop that speaks DSN takes the SUCCESS request over (RFC 3461 §5.2).
      if ((r.local || out.dsn_relayed) && dsn_wanted(env, r, action))
        success.push_back(dsn_recipient(o.index, action, r, now_ms, &out.reply));
    } else if (out.permanent()) {
      r.state = RecipientState::kFailed;
      t.event = "FAIL";
      if (dsn_wanted(env, r, DsnAction::kFailed)) {
        failed.push_back(dsn_recipient(o.index, DsnAction::kFailed, r, now_ms, &out.reply));
        if (!out.remote) failed.back().remote_mta.clear();  // tern's own verdict
      }
    } else {
      r.state = RecipientState::kDeferred;
      t.event = "DEFER";
    }
    result.tracking.push_back(std::move(t));
  }
}

AttemptResult AttemptRecorder::record(Envelope& env, std::string_view content,
                                      const std::vector<delivery::RecipientOutcome>& outcomes,
                                      std::int64_t now_ms) {
  AttemptResult result;
  std::vector<DsnRecipient> failed, success;
  apply(env, outcomes, now_ms, failed, success, result);
  return finish(env, content, std::move(failed), std::move(success), now_ms, std::move(result));
}

AttemptResult AttemptRecorder::record_group(Envelope& env, std::string_view content,
                                            const std::vector<delivery::RecipientOutcome>& outcomes,
                                            std::int64_t now_ms) {
  AttemptResult result;
  std::vector<DsnRecipient> failed, success;
  apply(env, outcomes, now_ms, failed, success, result);
  add_dsn(env, content, std::move(failed), now_ms, result);
  add_dsn(env, content, std::move(success), now_ms, result);
  return result;
}

AttemptResult AttemptRecorder::fail_pending(Envelope& env, std::string_view content,
                                            const smtp::Reply& reply, std::int64_t now_ms) {
  AttemptResult result;
  std::vector<DsnRecipient> failed;
  for (std::size_t i = 0; i < env.recipients.size(); ++i) {
    Recipient& r = env.recipients[i];
    if (r.done()) continue;
    std::string last = r.last_reply;
    r.state = RecipientState::kFailed;
    r.last_reply = reply.summary() + (last.empty() ? "" : " (last attempt: " + last + ")");
    result.tracking.push_back({"FAIL", env.id, r.address, r.remote_host, r.last_reply});
    if (dsn_wanted(env, r, DsnAction::kFailed)) {
      failed.push_back(dsn_recipient(i, DsnAction::kFailed, r, now_ms, &reply));
    }
  }
  return finish(env, content, std::move(failed), {}, now_ms, std::move(result));
}

AttemptResult AttemptRecorder::finish(Envelope& env, std::string_view content,
                                      std::vector<DsnRecipient> failed,
                                      std::vector<DsnRecipient> success, std::int64_t now_ms,
                                      AttemptResult result) {
  std::vector<DsnRecipient> delayed;
  std::uint32_t attempts = 0;
  bool pending = false;
  for (std::size_t i = 0; i < env.recipients.size(); ++i) {
    Recipient& r = env.recipients[i];
    if (r.done()) continue;
    pending = true;
    attempts = std::max(attempts, r.attempts);
    if (r.state == RecipientState::kDeferred && !r.delay_notified &&
        schedule_.delay_notice_due(env.arrival_ms, now_ms)) {
      r.delay_notified = true;
      if (dsn_wanted(env, r, DsnAction::kDelayed)) {
        auto d = dsn_recipient(i, DsnAction::kDelayed, r, now_ms);
        if (auto p = r.last_reply.find(' ');
            p != std::string::npos && r.last_reply.size() > p + 1 && r.last_reply[p + 1] == '4')
          d.status = r.last_reply.substr(p + 1, r.last_reply.find(' ', p + 1) - p - 1);
        d.will_retry_until_ms = schedule_.give_up_at(env.arrival_ms);
        delayed.push_back(std::move(d));
      }
    }
  }
  add_dsn(env, content, std::move(failed), now_ms, result);
  add_dsn(env, content, std::move(delayed), now_ms, result);
  add_dsn(env, content, std::move(success), now_ms, result);
  result.finished = !pending;
  if (pending) {
    env.next_attempt_ms = result.next_attempt_ms = schedule_.next_attempt(now_ms, attempts);
    result.change.update.push_back(env);
  } else {
    result.change.remove.push_back(env.id);
  }
  return result;
}

void AttemptRecorder::add_dsn(const Envelope& env, std::string_view content,
                              std::vector<DsnRecipient> recipients, std::int64_t now_ms,
                              AttemptResult& result) {
  if (recipients.empty() || env.sender.empty()) return;
  DsnRequest request;
  request.original = &env;
  request.original_content = content;
  request.recipients = std::move(recipients);
  request.reporting_mta = config_.hostname;
  request.now_ms = now_ms;
  auto dsn = compose_dsn(request);
  if (!dsn) return;
  NewMessage m;
  auto& e = m.envelope;
  e.id = spool_.next_id();
  e.message_id = dsn->message_id;
  e.sender = "";
  e.is_dsn = true;
  // The notice may carry the original's 8-bit or UTF-8 content back.
  if (env.body != smtp::BodyType::kUnspecified && env.body != smtp::BodyType::k7Bit)
    e.body = smtp::BodyType::k8BitMime;
  e.smtputf8 = env.smtputf8;
  e.arrival_ms = e.next_attempt_ms = now_ms;
  e.listener = "dsn";
  Recipient to;
  to.address = dsn->recipient;
  auto address = smtp::parse_address(dsn->recipient);
  to.local = address && config_.accepts_domain(address->domain_key());
  e.recipients.push_back(std::move(to));
  e.size = dsn->content.size();
  m.content = std::move(dsn->content);
  result.tracking.push_back({"DSN", env.id, dsn->recipient, "",
                             std::string(action_name(request.recipients.front().action)) +
                                 " notice " + std::to_string(e.id) + " " + e.message_id});
  result.new_messages.push_back(e.id);
  result.change.add.push_back(std::move(m));
}

}  // namespace tern::queue
