// delivery::SmtpClient: opening a session with the next hop (greeting,
// EHLO/LHLO or HELO, STARTTLS), the capabilities it announces, and QUIT. The
// mail transactions themselves are in smtp_client_transaction.cpp.
//
// A greeting other than 220 is a temporary kHost failure, 5xx included: RFC
// 5321 §3.1 lets a host answer 554 when it will not talk to this client, which
// says nothing final about the message, so the next MX host is tried and the
// message stays queued (Postfix's smtp_skip_5xx_greeting does the same).
#include "delivery/smtp_client.h"

#include <algorithm>

#include "delivery/smtp_client_transaction.h"
#include "delivery/smtp_client_wire.h"
#include "util/text.h"

namespace tern::delivery {

namespace {

constexpr Millis kQuitWait{10'000};  // a peer that does not answer QUIT holds nothing back
// AUTH mechanisms kept from an EHLO reply. Real servers offer a handful; a
// hostile one can list tens of thousands in one reply, which must cost neither
// memory nor time on the event loop.
constexpr std::size_t kMaxAuthMechanisms = 32;

std::string peer_text(const std::string& name, const asio::ip::tcp::endpoint& endpoint) {
  return name + "[" + endpoint.address().to_string() + "]:" + std::to_string(endpoint.port());
}

bool is_ip_literal(const std::string& name) {
  std::error_code ec;
  asio::ip::make_address(name, ec);
  return !ec;
}

Outcome reply_failure(const smtp::Reply& reply, const std::string& peer) {
  Outcome outcome = reply.permanent_failure()
                        ? Outcome::permanent_failure(Scope::kHost, reply, peer)
                        : Outcome::temporary_failure(Scope::kHost, reply, peer);
  outcome.remote = true;
  return outcome;
}

// The greeting, EHLO (or HELO), STARTTLS and EHLO again: either the
// capabilities of a session ready for MAIL, or the failure that ended it.
class Opening {
 public:
  Opening(ClientConnection& connection, const ClientOptions& options, const std::string& peer)
      : connection_(connection), options_(options), peer_(peer) {}

  net::awaitable<std::optional<Outcome>> run();
  const Capabilities& capabilities() const { return capabilities_; }
  // The peer is still talking after the failure: QUIT before closing.
  bool polite() const { return polite_; }

 private:
  net::awaitable<std::optional<Outcome>> hello();
  net::awaitable<std::optional<Outcome>> starttls();
  net::awaitable<std::optional<smtp::Reply>> exchange(std::string line, std::string_view verb);
  std::optional<Outcome> refused(const smtp::Reply& reply) {
    polite_ = true;
    return reply_failure(reply, peer_);
  }
  std::optional<Outcome> made_up(Scope scope, smtp::Reply reply, bool polite) {
    polite_ = polite;
    return Outcome::temporary_failure(scope, std::move(reply), peer_);
  }
  void note(const std::string& text) {
    if (options_.transcript) options_.transcript(Direction::kInfo, text);
  }

  ClientConnection& connection_;
  const ClientOptions& options_;
  const std::string& peer_;
  Capabilities capabilities_;
  std::optional<Outcome> lost_;  // set when exchange() returned nothing
  bool polite_ = false;
};

net::awaitable<std::optional<Outcome>> Opening::run() {
  auto greeting = co_await connection_.read_reply(options_.timeouts.greeting);
  if (!greeting.reply)
    co_return made_up(Scope::kConnection, lost_reply(greeting, peer_, "the greeting"), false);
  const smtp::Reply& reply = *greeting.reply;
  if (reply.code != 220) {
    if (reply.code >= 400) {  // 5xx too: see the file comment
      auto failure = refused(reply);
      failure->status = Status::kTemporary;
      co_return failure;
    }
    co_return made_up(Scope::kHost,
                      smtp::Reply(451, "4.5.0",
                                  "Not SMTP: greeting \"" + util::printable(reply.summary(), 100) +
                                      "\" from " + peer_),
                      false);
  }
  auto failure = co_await hello();
  if (failure) co_return failure;
  if (options_.tls && capabilities_.starttls) {
    failure = co_await starttls();
    if (failure) co_return failure;
  }
  if (options_.require_tls && !connection_.tls()) {
    std::string why = options_.tls ? "was not offered by " + peer_ : "no TLS client is configured";
    co_return made_up(Scope::kHost, smtp::Reply(451, "4.7.4", "TLS is required, but " + why), true);
  }
  co_return std::nullopt;
}

net::awaitable<std::optional<Outcome>> Opening::hello() {
  std::string name = options_.helo_name.empty() ? "localhost" : options_.helo_name;
  std::string verb = options_.lmtp ? "LHLO" : "EHLO";
  auto reply = co_await exchange(verb + " " + name + "\r\n", verb);
  if (!reply) co_return lost_;
  if (reply->reply_class() == 2) {
    capabilities_ = Capabilities::parse(*reply);
    co_return std::nullopt;
  }
  if (reply->permanent_failure() && !options_.lmtp) {  // RFC 5321 §3.2: a server without ESMTP
    note("EHLO refused; trying HELO");
    reply = co_await exchange("HELO " + name + "\r\n", "HELO");
    if (!reply) co_return lost_;
    if (reply->reply_class() == 2) {
      capabilities_ = Capabilities();
      co_return std::nullopt;
    }
  }
  co_return refused(*reply);
}

net::awaitable<std::optional<Outcome>> Opening::starttls() {
  auto reply = co_await exchange("STARTTLS\r\n", "STARTTLS");
  if (!reply) co_return lost_;
  if (reply->code != 220) {
    if (options_.require_tls)
      co_return made_up(Scope::kHost,
                        smtp::Reply(451, "4.7.4",
                                    "TLS is required, but " + peer_ + " refused STARTTLS: " +
                                        util::printable(reply->summary(), 200)),
                        true);
    note("STARTTLS refused; continuing without TLS");
    co_return std::nullopt;
  }
  std::string sni = is_ip_literal(options_.peer_name) ? "" : options_.peer_name;
  std::string error = co_await connection_.start_tls(*options_.tls, sni, options_.timeouts.command);
  if (!error.empty()) {
    // Temporary: the caller may try this host again later without TLS.
    co_return made_up(
        Scope::kConnection,
        smtp::Reply(451, "4.7.5", "TLS handshake with " + peer_ + " failed: " + error), false);
  }
  co_return co_await hello();  // RFC 3207 §4.2: forget what was said before TLS
}

net::awaitable<std::optional<smtp::Reply>> Opening::exchange(std::string line,
                                                             std::string_view verb) {
  bool sent = co_await connection_.send(line, options_.timeouts.command);
  if (!sent) {
    lost_ = Outcome::temporary_failure(Scope::kConnection, send_failed_reply(peer_, verb), peer_);
    co_return std::nullopt;
  }
  auto result = co_await connection_.read_reply(options_.timeouts.command);
  if (!result.reply) {
    lost_ = Outcome::temporary_failure(
        Scope::kConnection, lost_reply(result, peer_, "the reply to " + std::string(verb)), peer_);
    co_return std::nullopt;
  }
  co_return result.reply;
}

smtp::Reply connect_failure(const std::string& error, const std::string& peer) {
  if (error == "Connection refused") return smtp::Reply(451, "4.4.1", error + " by " + peer);
  return smtp::Reply(451, "4.4.1", "Connection to " + peer + " failed: " + error);
}

}  // namespace

Capabilities Capabilities::parse(const smtp::Reply& ehlo_reply) {
  Capabilities caps;
  caps.esmtp = true;
  // RFC 5321 §4.1.1.1: the first line is the greeting, then one keyword and
  // its parameters per line. Keywords are case-insensitive.
  for (std::size_t i = 1; i < ehlo_reply.lines.size(); ++i) {
    std::string line = util::to_upper(util::trim(ehlo_reply.lines[i]));
    auto space = line.find(' ');
    std::string keyword = line.substr(0, space);
    std::string params = space == std::string::npos ? "" : line.substr(space + 1);
    if (keyword.starts_with("AUTH=")) {  // "AUTH=LOGIN PLAIN", the form before RFC 4954
      params = keyword.substr(5) + " " + params;
      keyword = "AUTH";
    }
    if (keyword == "SIZE") {  // RFC 1870: "SIZE" alone or "SIZE 0" announce no limit
      caps.size_limit = util::parse_uint(util::trim(params)).value_or(0);
    } else if (keyword == "AUTH") {
      for (auto mechanism : util::split(params, ' '))
        if (!mechanism.empty() && caps.auth.size() < kMaxAuthMechanisms &&
            std::find(caps.auth.begin(), caps.auth.end(), mechanism) == caps.auth.end())
          caps.auth.emplace_back(mechanism);
    } else {
      static constexpr std::pair<const char*, bool Capabilities::*> kFlags[] = {
          {"PIPELINING", &Capabilities::pipelining},
          {"DSN", &Capabilities::dsn},
          {"8BITMIME", &Capabilities::eightbitmime},
          {"BINARYMIME", &Capabilities::binarymime},
          {"CHUNKING", &Capabilities::chunking},
          {"SMTPUTF8", &Capabilities::smtputf8},
          {"STARTTLS", &Capabilities::starttls},
          {"ENHANCEDSTATUSCODES", &Capabilities::enhanced_codes},
      };
      for (const auto& [name, flag] : kFlags)
        if (keyword == name) caps.*flag = true;
    }
  }
  return caps;
}

SmtpClient::SmtpClient(std::unique_ptr<ClientConnection> connection, ClientOptions options)
    : connection_(std::move(connection)),
      options_(std::move(options)),
      peer_(peer_text(options_.peer_name, connection_->endpoint())) {}

SmtpClient::~SmtpClient() = default;

net::awaitable<SmtpClient::Opened> SmtpClient::open(asio::any_io_executor executor,
                                                    asio::ip::tcp::endpoint endpoint,
                                                    ClientOptions options) {
  std::string error;
  auto connection = co_await ClientConnection::connect(executor, endpoint, options.timeouts.connect,
                                                       error, options.transcript, options.deadline);
  if (!connection) {
    std::string peer = peer_text(options.peer_name, endpoint);
    co_return Opened{nullptr, Outcome::temporary_failure(Scope::kConnection,
                                                         connect_failure(error, peer), peer)};
  }
  std::unique_ptr<SmtpClient> client(new SmtpClient(std::move(connection), std::move(options)));
  Opening opening(*client->connection_, client->options_, client->peer_);
  auto failure = co_await opening.run();
  if (failure) {
    if (opening.polite())
      co_await client->quit();
    else
      client->connection_->close();
    co_return Opened{nullptr, std::move(*failure)};
  }
  client->capabilities_ = opening.capabilities();
  client->reusable_ = true;
  co_return Opened{std::move(client), {}};
}

net::awaitable<std::vector<RecipientOutcome>> SmtpClient::send(
    const queue::Envelope& envelope, const std::vector<std::size_t>& recipients,
    std::string_view content) {
  if (!connection_ || !reusable_) {  // a caller's mistake; nothing is sent
    std::vector<RecipientOutcome> out;
    for (std::size_t index : recipients)
      out.push_back(
          {index, Outcome::temporary_failure(
                      Scope::kConnection,
                      smtp::Reply(451, "4.4.2",
                                  "The session with " + peer_ + " cannot take another message"),
                      peer_)});
    co_return out;
  }
  reusable_ = false;
  Transaction transaction(*connection_, options_, capabilities_, peer_);
  auto out = co_await transaction.run(envelope, recipients, content);
  reusable_ = transaction.clean();
  co_return out;
}

void SmtpClient::set_deadline(std::optional<TimePoint> deadline) {
  options_.deadline = deadline;
  if (connection_) connection_->set_deadline(deadline);
}

net::awaitable<void> SmtpClient::quit() {
  if (!connection_) co_return;
  reusable_ = false;
  set_deadline(std::nullopt);  // QUIT has its own short bound
  Millis wait = std::min(options_.timeouts.command, kQuitWait);
  // A closed connection fails the write at once; a live one answers 221.
  bool sent = co_await connection_->send("QUIT\r\n", wait);
  if (sent) co_await connection_->read_reply(wait);
  connection_->close();
  connection_.reset();
}

bool SmtpClient::tls() const {
  return connection_ && connection_->tls();
}

}  // namespace tern::delivery
