// Session verbs that open, reset and close: greeting, EHLO/HELO (RFC 5321
// §4.1.1.1), RSET, NOOP, VRFY, HELP, QUIT.
#include "server/session.h"
#include "smtp/headers.h"
#include "smtp/replies.h"

namespace tern::server {

using smtp::Reply;
namespace replies = smtp::replies;

Reply Session::greeting() const {
  return replies::greeting(env_.config->hostname, smtp::rfc5322_date_now());
}

Reply Session::ehlo_reply() const {
  const auto& l = *env_.listener;
  Reply r = replies::helo_ok(env_.config->hostname, env_.client.address);
  // The order of SPEC §3.
  r.lines.push_back("SIZE " + std::to_string(l.max_message_size));
  r.lines.emplace_back("PIPELINING");
  r.lines.emplace_back("DSN");
  r.lines.emplace_back("ENHANCEDSTATUSCODES");
  if (env_.tls_available && !env_.tls_active) r.lines.emplace_back("STARTTLS");
  if (auth_offered()) r.lines.emplace_back("AUTH PLAIN LOGIN");
  r.lines.emplace_back("8BITMIME");
  r.lines.emplace_back("BINARYMIME");
  r.lines.emplace_back("CHUNKING");
  r.lines.emplace_back("SMTPUTF8");
  return r;
}

Step Session::cmd_hello(std::string_view arg, bool extended) {
  if (!smtp::valid_helo_domain(arg)) return answer(replies::kInvalidDomain);
  // EHLO/HELO in the middle of a transaction resets it (RFC 5321 §4.1.4).
  reset_transaction();
  helo_ = std::string(arg);
  extended_ = extended;
  if (!extended) return answer(replies::helo_ok(env_.config->hostname, env_.client.address));
  return answer(ehlo_reply());
}

Step Session::cmd_rset(std::string_view arg) {
  if (!arg.empty()) return answer(replies::kSyntaxError);
  reset_transaction();
  return answer(replies::kReset);
}

Step Session::cmd_noop(std::string_view) {
  return answer(replies::kNoop);
}

Step Session::cmd_vrfy(std::string_view arg) {
  if (arg.empty()) return answer(replies::kSyntaxError);
  // Confirming addresses helps harvesters; like Exchange, tern neither confirms nor denies.
  return answer(replies::kVrfy);
}

Step Session::cmd_help(std::string_view) {
  return answer(replies::help());
}

Step Session::cmd_quit(std::string_view) {
  return {replies::kQuit, Action::kClose};
}

}  // namespace tern::server
