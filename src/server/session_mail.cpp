// MAIL and RCPT (RFC 5321 §4.1.1.2-3) with their ESMTP parameters, and the
// recipient policy: accepted domains and their mailboxes, relay only for
// authenticated clients and [relay] networks (SPEC §3).
#include "server/session.h"
#include "smtp/replies.h"
#include "util/text.h"

namespace tern::server {

using smtp::PathStatus;
using smtp::Reply;
namespace replies = smtp::replies;

Step Session::cmd_mail(std::string_view arg) {
  if (helo_.empty() || tx_.active) return answer(replies::kBadSequence);
  if (env_.listener->auth == config::AuthMode::kRequired && auth_user_.empty())
    return answer(replies::kNotAuthenticated);
  if (!util::istarts_with(arg, "FROM:")) return answer(replies::kSyntaxError);
  auto path = smtp::parse_path(arg.substr(5), true);
  if (path.status == PathStatus::kBadUtf8) return answer(replies::kSenderNotUtf8);
  if (path.status != PathStatus::kOk || path.bare_postmaster)
    return answer(replies::kInvalidSender);
  auto params = smtp::parse_mail_params(path.rest, auth_offered());
  if (!params.params) return answer(params.error);
  const auto& p = *params.params;
  if (!path.address.is_ascii() && !p.smtputf8) return answer(replies::kUtf8NotDeclared);
  if (p.size && *p.size > env_.listener->max_message_size) return answer(replies::kMessageTooBig);
  if (!env_.spool->has_room(p.size.value_or(0))) return answer(replies::kInsufficientStorage);
  if (!auth_user_.empty() && !path.null_path) {
    // Send-as: an authenticated user may use only their own address or aliases.
    auto own = env_.config->find_mailbox(auth_user_);
    auto as = env_.config->find_mailbox(path.address.str());
    if (!own || !as || own->address != as->address) return answer(replies::kSendAsDenied);
  }
  tx_.active = true;
  tx_.sender = path.address;
  tx_.params = p;
  return answer(replies::kSenderOk);
}

Step Session::cmd_rcpt(std::string_view arg) {
  if (!tx_.active) return answer(replies::kBadSequence);
  if (!util::istarts_with(arg, "TO:")) return answer(replies::kSyntaxError);
  auto path = smtp::parse_path(arg.substr(3), tx_.params.smtputf8);
  if (path.status == PathStatus::kBadUtf8) return answer(replies::kRecipientNotUtf8);
  if (path.status == PathStatus::kNeedsUtf8) return answer(replies::kUtf8NotDeclared);
  if (path.status != PathStatus::kOk || path.null_path) return answer(replies::kInvalidRecipient);
  auto params = smtp::parse_rcpt_params(path.rest);
  if (!params.params) return answer(params.error);
  if (tx_.recipients.size() >= env_.listener->max_recipients)
    return answer(replies::kTooManyRecipients);

  const auto& config = *env_.config;
  smtp::Address address = path.address;
  if (path.bare_postmaster)  // RFC 5321 §4.5.1: <Postmaster> is ours
    address.domain =
        config.accepted_domains.empty() ? config.hostname : config.accepted_domains.front();
  bool local = config.accepts_domain(address.domain_key());
  if (local) {
    std::string key = address.unquoted_local() + "@" + address.domain;
    if (!config.find_mailbox(key)) return answer(replies::kUserUnknown);
  } else if (!may_relay()) {
    return answer(replies::kRelayDenied);
  }

  std::string text = address.str();
  for (const auto& r : tx_.recipients)
    if (util::iequals(r.address, text)) return answer(replies::kRecipientOk);  // stored once
  queue::Recipient r;
  r.address = std::move(text);
  r.local = local;
  r.notify = params.params->notify;
  r.orcpt_type = params.params->orcpt_type;
  r.orcpt = params.params->orcpt;
  tx_.recipients.push_back(std::move(r));
  return answer(replies::kRecipientOk);
}

}  // namespace tern::server
