#include "server/connection.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include "queue/spool_async.h"
#include "server/server_context.h"
#include "smtp/replies.h"
#include "util/text.h"

namespace tern::server {

using smtp::Reply;
namespace replies = smtp::replies;

namespace {

std::string endpoint_text(const asio::ip::tcp::endpoint& ep) {
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  std::string out = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  out += ':';
  out += std::to_string(ep.port());
  return out;
}

std::string address_text(const asio::ip::tcp::socket& s) {
  std::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown";
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a.to_string();
}

std::string endpoint_of(const asio::ip::tcp::socket& s, bool local) {
  std::error_code ec;
  auto ep = local ? s.local_endpoint(ec) : s.remote_endpoint(ec);
  return ec ? std::string("unknown") : endpoint_text(ep);
}

constexpr std::size_t kCommandReadSize = 4096;
constexpr std::size_t kDataReadSize = 65536;

}  // namespace

Connection::Connection(ServerContext& server, const config::Listener& listener,
                       std::size_t listener_index, asio::ip::tcp::socket socket,
                       dns::Resolver* resolver)
    : server_(server),
      listener_(listener),
      listener_index_(listener_index),
      metrics_(log::metrics().listener(listener_index)),
      resolver_(resolver),
      stream_(std::move(socket)),
      remote_address_(address_text(stream_.socket())),
      log_(&server.protocol_log(), listener.name, endpoint_of(stream_.socket(), true),
           endpoint_of(stream_.socket(), false)),
      timer_(stream_.socket().get_executor()) {}

Connection::~Connection() = default;

void Connection::touch() {
  deadline_ =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(listener_.command_timeout_ms);
}

// The deadline of the next read. Waiting for a command: the whole line must
// arrive within command_timeout of its first byte, however slowly it trickles
// in (slowloris). In a message: command_timeout between reads, and the whole
// message within data_timeout.
void Connection::set_read_deadline(bool in_message) {
  auto now = std::chrono::steady_clock::now();
  if (in_message || session_->message_open()) {
    if (!message_deadline_)
      message_deadline_ = now + std::chrono::milliseconds(listener_.data_timeout_ms);
    deadline_ =
        std::min(now + std::chrono::milliseconds(listener_.command_timeout_ms), *message_deadline_);
    return;
  }
  message_deadline_.reset();
  if (!in_.line_started()) touch();  // a new command starts; a partial one keeps its deadline
}

void Connection::received(std::string_view line) {
  log_.event('<', line);
}
void Connection::info(std::string_view text) {
  log_.event('*', text);
}

void Connection::queue_reply(const Reply& reply) {
  reply.append_wire(out_);
  metrics_.reply(reply.code);
  if (!log_.enabled()) return;
  // A multi-line reply is one event, its lines joined by spaces (as Exchange logs EHLO).
  std::string text = std::to_string(reply.code);
  if (!reply.enhanced.empty()) text += " " + reply.enhanced;
  for (const auto& l : reply.lines) text += " " + l;
  log_.event('>', text);
}

void Connection::request_shutdown() {
  asio::post(stream_.socket().get_executor(), [self = shared_from_this()] {
    self->shutdown_requested_ = true;
    if (self->phase_ == Phase::kWaitingCommand) self->stream_.cancel();
  });
}

net::awaitable<void> Connection::watchdog() {
  auto self = shared_from_this();
  while (phase_ != Phase::kClosing) {
    timer_.expires_at(deadline_);
    co_await timer_.async_wait(net::use_tuple);
    if (phase_ == Phase::kClosing) break;
    if (std::chrono::steady_clock::now() >= deadline_ && io_pending_) {
      timed_out_ = true;
      stream_.cancel();
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline_) touch();  // busy (spool, DNS): not idle
  }
}

net::awaitable<bool> Connection::flush() {
  if (out_.empty()) co_return true;
  touch();
  io_pending_ = true;
  auto [ec, n] = co_await stream_.write(asio::buffer(out_));
  io_pending_ = false;
  out_.clear();
  if (out_.capacity() > 65536) std::string().swap(out_);
  co_return !ec;
}

net::awaitable<bool> Connection::read_more() {
  bool in_message = session_->reading_message();
  phase_ = in_message ? Phase::kBusy : Phase::kWaitingCommand;
  if (!in_message && shutdown_requested_) {
    queue_reply(replies::kServiceNotAvailable);
    co_await flush();
    co_return false;
  }
  if (!in_message) in_.shrink_if_empty();
  std::size_t want = in_message ? kDataReadSize : kCommandReadSize;
  char* p = in_.prepare(want);
  set_read_deadline(in_message);
  io_pending_ = true;
  auto [ec, n] = co_await stream_.read_some(asio::buffer(p, in_.writable()));
  io_pending_ = false;
  phase_ = Phase::kBusy;
  if (!ec) {
    in_.commit(n);
    co_return true;
  }
  if (timed_out_) {
    info("timed out");
    queue_reply(session_->timed_out());
    co_await flush();
  } else if (shutdown_requested_ && ec == asio::error::operation_aborted) {
    queue_reply(replies::kServiceNotAvailable);
    co_await flush();
  } else if (in_message) {
    info("connection lost while reading a message; nothing was queued");
  }
  co_return false;
}

net::awaitable<bool> Connection::start_tls() {
  auto context = server_.tls_context(listener_index_);
  if (!context) co_return false;
  touch();
  io_pending_ = true;
  auto ec = co_await stream_.handshake(*context, true);
  io_pending_ = false;
  if (ec) {
    info("TLS negotiation failed: " + ec.message());
    co_return false;
  }
  info("TLS negotiation succeeded: " + net::tls_description(stream_.ssl()));
  co_return true;
}

net::awaitable<Step> Connection::verify_credentials() {
  auto delay = server_.auth_throttle().delay_for(remote_address_);
  if (delay.count() > 0) {
    asio::steady_timer wait(stream_.socket().get_executor(), delay);
    co_await wait.async_wait(net::use_tuple);
  }
  Session* session = session_.get();
  auto user = co_await asio::co_spawn(
      server_.auth_pool(),
      [session]() -> net::awaitable<std::optional<std::string>> {
        co_return session->verify_credentials();
      },
      asio::use_awaitable);
  if (user)
    server_.auth_throttle().succeeded(remote_address_);
  else
    server_.auth_throttle().failed(remote_address_);
  if (!user) metrics_.auth_failures.inc();
  co_return session_->credentials_verified(std::move(user));
}

// A part of a large message goes to the spool on the disk pool while this
// connection waits (and reads nothing more): the backpressure that bounds memory.
net::awaitable<Step> Connection::store_part() {
  MessagePart part = session_->take_part();
  // Only trivially copyable captures: GCC 12 mishandles a lambda temporary
  // owning a std::string inside a co_await expression.
  queue::Spool* spool = &server_.spool();
  const MessagePart* p = &part;
  auto result = co_await asio::co_spawn(
      server_.spool_pool(),
      [spool, p]() -> net::awaitable<queue::CommitResult> {
        co_return spool->store_part(p->id, p->seq, p->bytes);
      },
      asio::use_awaitable);
  co_return session_->part_stored(result);
}

// The sender checks of a complete message, on this loop: DKIM verification,
// then SPF and DMARC with the DKIM results (auth/sender_auth.h). DNS is
// awaited, never blocking the loop; a DNS failure is a temperror, not a refusal.
net::awaitable<Step> Connection::check_sender() {
  SenderCheck check = session_->take_sender_check();
  dns::Resolver& resolver = *resolver_;
  if (check.dkim) {
    std::vector<auth::DkimResult> dkim = co_await check.dkim->finish(resolver);
    check.input.dkim = std::move(dkim);
  }
  auth::SenderAuthVerdict verdict =
      co_await auth::check_sender(check.input, server_.config(), resolver);
  co_return session_->sender_checked(verdict);
}

// Parts of messages that will never be committed are dropped by the spool's
// committer; nobody waits for it.
void Connection::discard_abandoned() {
  auto ids = session_->take_abandoned();
  if (ids.empty()) return;
  queue::SpoolChange change;
  change.discard = std::move(ids);
  server_.spool().apply(std::move(change), [](queue::CommitResult) {});
}

net::awaitable<Step> Connection::commit() {
  queue::NewMessage message = session_->take_message();
  const auto& e = message.envelope;
  std::string recipients;
  for (const auto& r : e.recipients) recipients += (recipients.empty() ? "" : ";") + r.address;
  std::uint64_t id = e.id, size = e.size;
  bool local = queue::only_local(e);
  std::string message_id = e.message_id, sender = e.sender;
  queue::SpoolChange change;
  change.add.push_back(std::move(message));
  auto result = co_await queue::apply_async(server_.spool(), std::move(change));
  if (result.status == queue::SpoolStatus::kOk) {
    server_.tracking_log().write(
        {"RECEIVE", id, message_id, sender, recipients, remote_address_, size, listener_.name});
    metrics_.received.inc();
    server_.message_queued(id, local);
  } else {
    info("spool refused the message: " + result.error);
  }
  co_return session_->committed(result);
}

// The boundary of one connection: whatever throws inside it ends this
// connection (with 421 when the peer can still read it), never the server.
net::awaitable<void> Connection::run() {
  auto self = shared_from_this();
  log_.event('+', "");
  bool failed = false;
  try {
    co_await converse();
  } catch (const std::exception& e) {
    info(std::string("internal error, closing: ") + e.what());
    spdlog::error("session with {} ended by an internal error: {}", remote_address_, e.what());
    failed = true;
  }
  if (failed) {
    out_.clear();
    queue_reply(replies::kServiceNotAvailable);
    try {
      co_await flush();
    } catch (const std::exception&) {
    }
  }
  if (session_) {
    session_->connection_closed();
    discard_abandoned();
  }
  phase_ = Phase::kClosing;
  timer_.cancel();
  // No TLS close_notify exchange: QUIT has ended the session, and waiting for a
  // peer's close_notify would let a silent peer hold the connection open.
  stream_.close();
  log_.event('-', "");
  server_.detach(this, listener_index_);
}

net::awaitable<void> Connection::converse() {
  SessionEnv env;
  env.config = &server_.config();
  env.listener = &listener_;
  env.spool = &server_.spool();
  env.authenticator = server_.authenticator();
  env.client.address = remote_address_;
  env.client.ip = util::IpAddress::parse(remote_address_).value_or(util::IpAddress{});
  env.tls_available =
      listener_.tls == config::TlsMode::kStartTls && server_.tls_context(listener_index_);
  env.observer = this;
  env.dkim_keys = server_.dkim_keys();
  env.verify_senders = server_.config().sender_auth.verify && resolver_ != nullptr;
  session_ = std::make_unique<Session>(env);
  touch();
  asio::co_spawn(stream_.socket().get_executor(), watchdog(), asio::detached);

  bool open = true;
  if (listener_.tls == config::TlsMode::kImplicit) {
    open = co_await start_tls();
    if (open) session_->tls_established(net::tls_description(stream_.ssl()));
  }
  if (open) queue_reply(session_->greeting());
  while (open) {
    Step step = session_->process(in_);
    for (;;) {
      if (step.reply) queue_reply(*step.reply);
      if (step.action == Action::kCommit)
        step = co_await commit();
      else if (step.action == Action::kStore)
        step = co_await store_part();
      else if (step.action == Action::kVerifyCredentials)
        step = co_await verify_credentials();
      else if (step.action == Action::kCheckSender)
        step = co_await check_sender();
      else
        break;
    }
    discard_abandoned();
    switch (step.action) {
      case Action::kContinue:
        break;
      case Action::kNeedInput:
        open = co_await flush();
        if (open) open = co_await read_more();
        break;
      case Action::kStartTls:
        open = co_await flush();
        in_.clear();  // RFC 3207 §4.2: nothing sent before the handshake is a command
        if (open) open = co_await start_tls();
        if (open) session_->tls_established(net::tls_description(stream_.ssl()));
        break;
      case Action::kClose:
        co_await flush();
        open = false;
        break;
      case Action::kCommit:
      case Action::kStore:
      case Action::kVerifyCredentials:
      case Action::kCheckSender:
        break;
    }
  }
}

}  // namespace tern::server
