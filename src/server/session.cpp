// Session core: the command table, line limits, error counting, transaction
// reset. See session.h for the contract.
#include "server/session.h"

#include <utility>

#include "server/auth.h"
#include "smtp/replies.h"

namespace tern::server {

using smtp::InputBuffer;
using smtp::Reply;
using smtp::Verb;
namespace replies = smtp::replies;

Session::Session(SessionEnv env) : env_(std::move(env)) {}
Session::~Session() = default;

namespace {

// How each verb may be used (RFC 3207 §4: with TLS required, only these verbs
// are allowed before STARTTLS; RFC 5321 §4.5.3.1.4: line limits).
struct VerbRule {
  Verb verb;
  Step (Session::*handler)(std::string_view);
  bool before_tls;
  std::size_t line_limit;
};

}  // namespace

Step Session::process(InputBuffer& in) {
  switch (mode_) {
    case Mode::kData:
      return read_data(in);
    case Mode::kChunk:
      return read_chunk(in);
    case Mode::kAuth:
    case Mode::kCommand: {
      auto line = in.next_line(smtp::kMaxBufferedLine);
      if (line.status == InputBuffer::LineStatus::kNeedMore)
        return {std::nullopt, Action::kNeedInput};
      if (mode_ == Mode::kAuth) {
        if (line.status == InputBuffer::LineStatus::kTooLong) {
          mode_ = Mode::kCommand;
          sasl_.reset();
          return answer(replies::kLineTooLong);
        }
        return auth_response(line.line);
      }
      return command(line);
    }
  }
  return {std::nullopt, Action::kNeedInput};
}

Step Session::command(InputBuffer::LineResult line) {
  if (line.status == InputBuffer::LineStatus::kTooLong) {
    if (env_.observer) env_.observer->received("(line too long)");
    return answer(replies::kLineTooLong);
  }
  auto cmd = smtp::parse_command(line.line);
  if (env_.observer) {
    if (cmd.verb == Verb::kAuth) {
      // "AUTH PLAIN <initial response>": the response holds the password.
      auto space = cmd.argument.find(' ');
      std::string masked = "AUTH " + std::string(cmd.argument.substr(0, space));
      if (space != std::string_view::npos) masked += " ****";
      env_.observer->received(masked);
    } else {
      env_.observer->received(line.line);
    }
  }

  static const VerbRule kRules[] = {
      {Verb::kEhlo, nullptr, true, smtp::kCommandLineLimit},
      {Verb::kHelo, nullptr, true, smtp::kCommandLineLimit},
      {Verb::kMail, &Session::cmd_mail, false, smtp::kExtendedCommandLineLimit},
      {Verb::kRcpt, &Session::cmd_rcpt, false, smtp::kExtendedCommandLineLimit},
      {Verb::kData, &Session::cmd_data, false, smtp::kCommandLineLimit},
      {Verb::kBdat, &Session::cmd_bdat, false, smtp::kCommandLineLimit},
      {Verb::kRset, &Session::cmd_rset, true, smtp::kCommandLineLimit},
      {Verb::kNoop, &Session::cmd_noop, true, smtp::kCommandLineLimit},
      {Verb::kVrfy, &Session::cmd_vrfy, false, smtp::kCommandLineLimit},
      {Verb::kHelp, &Session::cmd_help, true, smtp::kCommandLineLimit},
      {Verb::kQuit, &Session::cmd_quit, true, smtp::kCommandLineLimit},
      {Verb::kStartTls, &Session::cmd_starttls, true, smtp::kCommandLineLimit},
      {Verb::kAuth, &Session::cmd_auth, false, smtp::kMaxBufferedLine},
  };
  const VerbRule* rule = nullptr;
  for (const auto& r : kRules)
    if (r.verb == cmd.verb) rule = &r;
  std::size_t limit = rule ? rule->line_limit : smtp::kCommandLineLimit;
  if (line.line.size() + 2 > limit) return answer(replies::kLineTooLong);
  if (!rule) {
    if (cmd.verb == Verb::kExpn) return answer(replies::kNotImplemented);
    return answer(replies::kUnrecognized);
  }
  if (!rule->before_tls && env_.listener->require_tls && !env_.tls_active)
    return answer(replies::kMustStartTls);
  if (cmd.verb == Verb::kEhlo || cmd.verb == Verb::kHelo)
    return cmd_hello(cmd.argument, cmd.verb == Verb::kEhlo);
  return (this->*rule->handler)(cmd.argument);
}

// Every reply to a command goes through here, so that errors are counted in one
// place: past listener.max_errors the client gets 421 4.7.0 and is dropped.
// 452 replies (server limits) and 421 do not count against the client.
Step Session::answer(Reply reply, Action action) {
  if (reply.code >= 400 && reply.code != 452 && reply.code != 421) {
    if (++errors_ > env_.listener->max_errors) return {replies::kTooManyErrors, Action::kClose};
  }
  return {std::move(reply), action};
}

void Session::reset_transaction() {
  if (tx_.parts > 0) abandoned_.push_back(tx_.id);
  tx_ = Transaction{};
  decoder_.reset();
  chunk_remaining_ = 0;
  chunk_last_ = false;
  chunk_error_.reset();
}

std::vector<std::uint64_t> Session::take_abandoned() {
  return std::exchange(abandoned_, {});
}

void Session::connection_closed() {
  reset_transaction();
}

bool Session::may_relay() const {
  if (!auth_user_.empty()) return true;
  for (const auto& net : env_.config->relay_networks)
    if (net.contains(env_.client.ip)) return true;
  return false;
}

Reply Session::timed_out() const {
  return replies::timed_out(env_.config->hostname);
}

}  // namespace tern::server
