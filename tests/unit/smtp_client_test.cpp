// delivery::SmtpClient against a scripted SMTP peer on 127.0.0.1 inside the
// test: the exact bytes the client sends (parameters with and without DSN,
// dot-stuffing, pipelining, BDAT), how each reply becomes an Outcome, and the
// failures that must end quickly instead of hanging (silence, a 600-line
// reply, a peer that closes mid-DATA). Also the sans-I/O parts: Capabilities
// and the dot-stuffer. STARTTLS runs against a certificate made in memory.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "delivery/smtp_client.h"
#include "delivery/smtp_client_wire.h"
#include "tls/context.h"
#include "util/text.h"

namespace tern::delivery {
namespace {

using asio::ip::tcp;

// One connection from a script. script[0] is the greeting; each later entry
// answers the next command line. After an answer starting with 354 the
// content up to the final dot counts as one command; "BDAT n" takes its n
// octets with it. An entry may end in "<close>" (close after writing it) or
// "<silent>" (never answer again); "<tls>" answers 220 and does the server's
// TLS handshake. Past the end of the script QUIT gets 221, anything else 500.
class FakeServer {
 public:
  FakeServer(asio::io_context& io, std::vector<std::string> script,
             std::shared_ptr<asio::ssl::context> tls = nullptr)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        endpoint_(acceptor_.local_endpoint()),
        script_(std::move(script)),
        tls_(std::move(tls)) {
    asio::co_spawn(io, serve(), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }
  tcp::endpoint endpoint() const { return endpoint_; }

  std::string received;              // every byte the client sent (after TLS: decrypted)
  std::vector<std::size_t> waiting;  // per command: bytes already there after it (pipelining)
  std::string sni;                   // the server name the client asked for

 private:
  net::awaitable<void> serve() {
    auto [ec, socket] = co_await acceptor_.async_accept(net::use_tuple);
    acceptor_.close();
    if (ec) co_return;
    socket.set_option(tcp::no_delay(true));  // one reply per write, without Nagle's wait
    net::Stream stream(std::move(socket));
    bool open = co_await answer(stream, next_entry(""));
    while (open) {
      auto unit = co_await take(stream);
      if (!unit) break;
      open = co_await answer(stream, next_entry(*unit));
    }
    stream.close();
  }

  std::string next_entry(std::string_view command) {
    if (next_ < script_.size()) return script_[next_++];
    if (util::istarts_with(command, "QUIT")) return "221 2.0.0 bye\r\n<close>";
    return "500 5.5.1 not in the test script\r\n";
  }

  std::optional<std::size_t> unit_length() const {
    if (in_data_) {
      if (pending_.starts_with(".\r\n")) return 3;
      auto end = pending_.find("\r\n.\r\n");
      return end == std::string::npos ? std::nullopt : std::optional(end + 5);
    }
    auto eol = pending_.find("\r\n");
    if (eol == std::string::npos) return std::nullopt;
    std::size_t octets = util::istarts_with(pending_, "BDAT ") ? std::stoul(pending_.substr(5)) : 0;
    if (pending_.size() < eol + 2 + octets) return std::nullopt;
    return eol + 2 + octets;
  }

  net::awaitable<std::optional<std::string>> take(net::Stream& stream) {
    for (;;) {
      if (auto n = unit_length()) {
        std::string unit = pending_.substr(0, *n);
        pending_.erase(0, *n);
        waiting.push_back(pending_.size());
        in_data_ = false;
        co_return unit;
      }
      bool more = co_await read_more(stream);
      if (!more) co_return std::nullopt;
    }
  }

  net::awaitable<bool> read_more(net::Stream& stream) {
    char buf[8192];
    auto [ec, n] = co_await stream.read_some(asio::buffer(buf));
    if (ec) co_return false;
    received.append(buf, n);
    pending_.append(buf, n);
    co_return true;
  }

  net::awaitable<bool> answer(net::Stream& stream, std::string entry) {
    if (entry == "<tls>") {
      co_await stream.write(asio::buffer(std::string_view("220 2.0.0 ready\r\n")));
      pending_.clear();
      auto ec = co_await stream.handshake(*tls_, true);
      if (const char* name = SSL_get_servername(stream.ssl(), TLSEXT_NAMETYPE_host_name))
        sni = name;
      co_return !ec;
    }
    bool close = entry.ends_with("<close>"), silent = entry.ends_with("<silent>");
    if (close || silent) entry.erase(entry.rfind('<'));
    if (!entry.empty()) co_await stream.write(asio::buffer(entry));
    in_data_ = entry.starts_with("354");
    for (bool more = silent; more;) more = co_await read_more(stream);
    co_return !close && !silent;
  }

  tcp::acceptor acceptor_;
  tcp::endpoint endpoint_;
  std::vector<std::string> script_;
  std::size_t next_ = 0;
  std::shared_ptr<asio::ssl::context> tls_;
  std::string pending_;
  bool in_data_ = false;
};

// A self-signed certificate for mx.example.test, made once in memory.
std::shared_ptr<asio::ssl::context> server_tls() {
  static auto context = [] {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("mx.example.test"), -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX_use_certificate(ctx->native_handle(), cert);
    SSL_CTX_use_PrivateKey(ctx->native_handle(), key);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
  }();
  return context;
}

ClientOptions test_options() {
  ClientOptions o;
  o.helo_name = "client.example.test";
  o.peer_name = "mx.example.test";
  Millis second{1000};
  o.timeouts = {second, second, second, second, second, second};
  return o;
}

const std::string kContent = "Subject: t\r\n\r\nHi\r\n";
const std::string kSize = std::to_string(kContent.size());

struct Message {
  queue::Envelope envelope;
  std::vector<std::size_t> recipients;
  std::string content;
};

Message message(std::vector<std::string> to, std::string content = kContent) {
  Message m;
  m.envelope.sender = "a@example.org";
  for (auto& address : to) {
    m.recipients.push_back(m.envelope.recipients.size());
    queue::Recipient recipient;
    recipient.address = address;
    m.envelope.recipients.push_back(recipient);
  }
  m.content = std::move(content);
  return m;
}

struct Result {
  std::optional<Outcome> failure;  // set when open failed
  Capabilities capabilities;
  std::vector<std::vector<RecipientOutcome>> outcomes;  // per message
  std::vector<bool> reusable;                           // after each message
  bool tls = false;
  std::string peer;
  std::vector<std::string> transcript;
};

// Opens a session to the server, sends the messages, QUITs; all on one loop
// that must run out of work (no timer or socket left behind).
Result deliver(asio::io_context& io, tcp::endpoint endpoint, std::vector<Message> messages,
               ClientOptions options = test_options()) {
  Result result;
  bool finished = false;
  options.transcript = [&](Direction d, std::string_view line) {
    result.transcript.push_back((d == Direction::kSent       ? "> "
                                 : d == Direction::kReceived ? "< "
                                                             : "* ") +
                                std::string(line));
  };
  auto client_session = [&]() -> net::awaitable<void> {
    auto opened = co_await SmtpClient::open(io.get_executor(), endpoint, options);
    if (!opened.client) {
      result.failure = opened.failure;
      co_return;
    }
    auto& client = *opened.client;
    result.capabilities = client.capabilities();
    result.tls = client.tls();
    result.peer = client.peer();
    for (const auto& m : messages) {
      result.outcomes.push_back(co_await client.send(m.envelope, m.recipients, m.content));
      result.reusable.push_back(client.reusable());
    }
    co_await client.quit();
  };
  asio::co_spawn(io, client_session(), [&](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
    finished = true;
  });
  io.run_for(std::chrono::seconds(5));
  EXPECT_TRUE(finished);
  EXPECT_TRUE(io.stopped()) << "work left on the event loop";
  return result;
}

Result deliver(FakeServer& server, asio::io_context& io, std::vector<Message> messages,
               ClientOptions options = test_options()) {
  return deliver(io, server.endpoint(), std::move(messages), std::move(options));
}

// "PIPELINING SIZE=100" → "250-mx.example.test Hello", "250-PIPELINING", "250 SIZE 100"
std::string ehlo_reply(std::string_view extensions) {
  std::string out = "250-mx.example.test Hello\r\n";
  for (auto word : util::split(extensions, ' ')) out += "250-" + std::string(word) + "\r\n";
  std::replace(out.begin(), out.end(), '=', ' ');
  out[out.rfind("250-") + 3] = ' ';
  return out;
}

std::size_t count(std::string_view text, std::string_view what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string_view::npos; pos = text.find(what, pos + 1))
    ++n;
  return n;
}

const std::string kGreeting = "220 mx.example.test ESMTP\r\n";
const std::string kEhlo = "EHLO client.example.test\r\n";

void expect_outcome(const RecipientOutcome& r, std::size_t index, Status status, Scope scope,
                    int code) {
  EXPECT_EQ(r.index, index);
  EXPECT_EQ(r.outcome.status, status) << r.outcome.reply.summary();
  EXPECT_EQ(r.outcome.scope, scope) << r.outcome.reply.summary();
  EXPECT_EQ(r.outcome.reply.code, code) << r.outcome.reply.summary();
}

// --- sans-I/O parts ---

TEST(SmtpClientCapabilities, ParsesKeywordsCaseInsensitively) {
  smtp::Reply ehlo(
      250, "",
      std::vector<std::string>{"mx Hello", "size 35882577", "Pipelining", "DSN", "8BITMIME",
                               "BINARYMIME", "CHUNKING", "SMTPUTF8", "STARTTLS",
                               "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN", "AUTH=LOGIN CRAM-MD5"});
  auto c = Capabilities::parse(ehlo);
  EXPECT_TRUE(c.esmtp && c.pipelining && c.dsn && c.eightbitmime && c.binarymime && c.chunking &&
              c.smtputf8 && c.starttls && c.enhanced_codes);
  EXPECT_EQ(c.size_limit, 35882577u);
  EXPECT_EQ(c.auth, (std::vector<std::string>{"PLAIN", "LOGIN", "CRAM-MD5"}));
}

TEST(SmtpClientCapabilities, SizeWithoutLimitAndNothingElse) {
  auto c = Capabilities::parse(smtp::Reply(250, "", std::vector<std::string>{"mx", "SIZE"}));
  EXPECT_EQ(c.size_limit, 0u);  // offered, no limit
  EXPECT_FALSE(c.pipelining || c.dsn || c.starttls);
  EXPECT_FALSE(Capabilities::parse(smtp::Reply(250, "", "mx")).size_limit.has_value());
}

// A hostile next hop may list tens of thousands of mechanisms in one EHLO
// reply (100 lines of 4 KB); tern keeps the first few, in order, and no more.
TEST(SmtpClientCapabilities, HostileAuthListIsCapped) {
  std::vector<std::string> lines{"mx", "AUTH PLAIN LOGIN"};
  for (int line = 0; line < 98; ++line) {
    std::string auth = "AUTH";
    for (int i = 0; auth.size() < 4000; ++i) auth += " M" + std::to_string(line * 1000 + i);
    lines.push_back(auth);
  }
  auto c = Capabilities::parse(smtp::Reply(250, "", lines));
  ASSERT_EQ(c.auth.size(), 32u);
  EXPECT_EQ(c.auth[0], "PLAIN");
  EXPECT_EQ(c.auth[1], "LOGIN");
  EXPECT_EQ(c.auth[2], "M0");
}

TEST(SmtpClientDotStuffer, Table) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"", ".\r\n"},
      {"a\r\n", "a\r\n.\r\n"},
      {"a", "a\r\n.\r\n"},
      {".\r\n", "..\r\n.\r\n"},
      {"a\r\n.b\r\n..c\r\nd.\r\n", "a\r\n..b\r\n...c\r\nd.\r\n.\r\n"},
      {"bare\n.lf\n", "bare\r\n..lf\r\n.\r\n"},
      {"x\r\n.", "x\r\n..\r\n.\r\n"},
      // A bare CR never goes out (RFC 5321 §2.3.8): "<CR>.<CR>" would end the
      // data early at a receiver that accepts it (SMTP smuggling).
      {"A\r.\r", "A\r\n..\r\n.\r\n"},
      {"A\r.\rMAIL FROM:<x@y>\r\n", "A\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n"},
      {"a\r\r\nb", "a\r\n\r\nb\r\n.\r\n"},
      {"a\n\rb", "a\r\n\r\nb\r\n.\r\n"},
      {"\r\n.\n.\r", "\r\n..\r\n..\r\n.\r\n"},
      {"end\r", "end\r\n.\r\n"},
  };
  for (const auto& c : cases) {
    for (std::size_t max : {std::size_t{1}, std::size_t{1000}}) {
      DotStuffer stuffer(c.in);
      std::string all, piece;
      while (!stuffer.done()) {
        stuffer.next(piece, max);
        all += piece;
      }
      EXPECT_EQ(all, c.out) << util::printable(c.in) << " max " << max;
    }
  }
}

// Whatever the stored bytes, every CR on the wire is followed by LF and every
// LF preceded by CR, and the only end of data is the last five octets.
TEST(SmtpClientDotStuffer, NoBareLineEndForAnyByteString) {
  const char alphabet[] = {'\r', '\n', '.', 'a', '\0'};
  std::size_t total = 1;
  for (std::size_t length = 0; length <= 7; ++length, total *= 5) {
    for (std::size_t n = 0; n < total; ++n) {
      std::string in;
      for (std::size_t k = n, i = 0; i < length; ++i, k /= 5) in += alphabet[k % 5];
      DotStuffer stuffer(in);
      std::string all, piece;
      while (!stuffer.done()) {
        stuffer.next(piece, 3);
        all += piece;
      }
      for (std::size_t i = 0; i < all.size(); ++i) {
        if (all[i] == '\r') {
          ASSERT_EQ(all[i + 1], '\n') << util::printable(in);
        }
        if (all[i] == '\n') {
          ASSERT_EQ(all[i - 1], '\r') << util::printable(in);
        }
      }
      std::string wire = "\r\n" + all;  // what follows the 354 reply's line end
      ASSERT_EQ(wire.find("\r\n.\r\n"), wire.size() - 5) << util::printable(in);
    }
  }
}

// --- conversations ---

TEST(SmtpClient, PipelinedTransactionWithDsn) {
  asio::io_context io;
  FakeServer server(
      io, {kGreeting, ehlo_reply("PIPELINING SIZE=1000000 DSN 8BITMIME"), "250 2.1.0 ok\r\n",
           "250 2.1.5 ok\r\n", "250 2.1.5 ok\r\n", "354 go\r\n", "250 2.6.0 <id@x> queued\r\n"});
  auto m = message({"b@example.test", "c@example.test"},
                   "Subject: t\r\n\r\n.leading dot\r\nline\r\n..two\r\nno end");
  m.envelope.body = smtp::BodyType::k8BitMime;
  m.envelope.ret = smtp::DsnRet::kHeaders;
  m.envelope.envid = "id+1 x";
  m.envelope.recipients[0].notify = smtp::notify::kSuccess | smtp::notify::kFailure;
  m.envelope.recipients[0].orcpt_type = "rfc822";
  m.envelope.recipients[0].orcpt = "b@example.test";
  auto r = deliver(server, io, {m});
  ASSERT_FALSE(r.failure) << r.failure->reply.summary();
  EXPECT_EQ(server.received,
            kEhlo + "MAIL FROM:<a@example.org> SIZE=" + std::to_string(m.content.size()) +
                " BODY=8BITMIME RET=HDRS ENVID=id+2B1+20x\r\n"
                "RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.test\r\n"
                "RCPT TO:<c@example.test>\r\n"
                "DATA\r\n"
                "Subject: t\r\n\r\n..leading dot\r\nline\r\n...two\r\nno end\r\n.\r\n"
                "QUIT\r\n");
  EXPECT_GT(server.waiting.at(1), 0u) << "RCPT and DATA were not sent with MAIL";
  ASSERT_EQ(r.outcomes.size(), 1u);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& o = r.outcomes[0][i];
    expect_outcome(o, i, Status::kDelivered, Scope::kRecipient, 250);
    EXPECT_TRUE(o.outcome.remote);
    EXPECT_FALSE(o.outcome.dsn_relayed);
    EXPECT_EQ(o.outcome.reply.enhanced, "2.6.0");
    EXPECT_EQ(o.outcome.remote_host,
              "mx.example.test[127.0.0.1]:" + std::to_string(server.endpoint().port()));
  }
  EXPECT_TRUE(r.reusable.at(0));
  // The transcript shows the dialogue, but not the message itself.
  auto has = [&](std::string_view line) {
    return std::find(r.transcript.begin(), r.transcript.end(), line) != r.transcript.end();
  };
  EXPECT_TRUE(has("> RCPT TO:<c@example.test>"));
  EXPECT_TRUE(has("< 250 2.6.0 <id@x> queued"));
  EXPECT_TRUE(has("> (message content, " + std::to_string(m.content.size()) + " octets)"));
  EXPECT_FALSE(has("> line"));
  EXPECT_TRUE(r.transcript.at(0).starts_with("* connected to 127.0.0.1:")) << r.transcript.at(0);
}

TEST(SmtpClient, OneCommandAtATimeWithoutDsn) {
  asio::io_context io;
  FakeServer server(
      io, {kGreeting, ehlo_reply("SIZE"), "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"});
  auto m = message({"b@example.test"});
  m.envelope.body = smtp::BodyType::k8BitMime;  // the peer has no 8BITMIME: no BODY=
  m.envelope.ret = smtp::DsnRet::kFull;
  m.envelope.envid = "x";
  m.envelope.recipients[0].notify = smtp::notify::kNever;
  m.envelope.recipients[0].orcpt = "b@example.test";
  auto r = deliver(server, io, {m});
  EXPECT_EQ(server.received, kEhlo + "MAIL FROM:<a@example.org> SIZE=" + kSize +
                                 "\r\nRCPT TO:<b@example.test>\r\n"
                                 "DATA\r\nSubject: t\r\n\r\nHi\r\n.\r\nQUIT\r\n");
  for (std::size_t w : server.waiting) EXPECT_EQ(w, 0u) << "pipelined without PIPELINING";
  ASSERT_EQ(r.outcomes.size(), 1u);
  expect_outcome(r.outcomes[0][0], 0, Status::kDelivered, Scope::kRecipient, 250);
  EXPECT_TRUE(r.outcomes[0][0].outcome.dsn_relayed);
}

TEST(SmtpClient, HeloWhenEhloIsRefused) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, "500 5.5.1 what?\r\n", "250 mx\r\n", "250 ok\r\n", "250 ok\r\n",
                         "354 go\r\n", "250 ok\r\n"});
  auto m = message({"b@example.test"});
  m.envelope.body = smtp::BodyType::k8BitMime;
  auto r = deliver(server, io, {m});
  ASSERT_FALSE(r.failure);
  EXPECT_FALSE(r.capabilities.esmtp);
  EXPECT_TRUE(server.received.starts_with(kEhlo + "HELO client.example.test\r\n"
                                                  "MAIL FROM:<a@example.org>\r\n"))
      << server.received;
  expect_outcome(r.outcomes.at(0).at(0), 0, Status::kDelivered, Scope::kRecipient, 250);
}

TEST(SmtpClient, RefusingGreetingsAreTemporaryForTheHost) {
  for (std::string greeting : {"421 4.3.2 busy\r\n", "554 5.7.1 no service here\r\n"}) {
    asio::io_context io;
    FakeServer server(io, {greeting});
    auto r = deliver(server, io, {});
    ASSERT_TRUE(r.failure);
    EXPECT_TRUE(r.failure->temporary());
    EXPECT_EQ(r.failure->scope, Scope::kHost);
    EXPECT_TRUE(r.failure->remote);
    EXPECT_EQ(r.failure->reply.code, std::stoi(greeting));
    EXPECT_EQ(server.received, "QUIT\r\n");
  }
}

TEST(SmtpClient, MailRefusedTemporarilyOrPermanently) {
  {  // pipelined 451: the RCPT and DATA replies are read, then RSET
    asio::io_context io;
    FakeServer server(io, {kGreeting, ehlo_reply("PIPELINING"), "451 4.3.0 later\r\n",
                           "503 5.5.1 no\r\n", "503 5.5.1 no\r\n", "250 2.0.0 reset\r\n"});
    auto r = deliver(server, io, {message({"b@example.test"})});
    expect_outcome(r.outcomes.at(0).at(0), 0, Status::kTemporary, Scope::kHost, 451);
    EXPECT_TRUE(server.received.ends_with("DATA\r\nRSET\r\nQUIT\r\n")) << server.received;
    EXPECT_TRUE(r.reusable.at(0));
  }
  {  // one at a time 550: no RCPT at all
    asio::io_context io;
    FakeServer server(io, {kGreeting, ehlo_reply("SIZE"), "550 5.7.1 go away\r\n", "250 ok\r\n"});
    auto r = deliver(server, io, {message({"b@example.test", "c@example.test"})});
    expect_outcome(r.outcomes.at(0).at(0), 0, Status::kPermanent, Scope::kMessage, 550);
    expect_outcome(r.outcomes.at(0).at(1), 1, Status::kPermanent, Scope::kMessage, 550);
    EXPECT_EQ(server.received,
              kEhlo + "MAIL FROM:<a@example.org> SIZE=" + kSize + "\r\nRSET\r\nQUIT\r\n");
  }
}

TEST(SmtpClient, MixedRecipientReplies) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("PIPELINING"), "250 ok\r\n", "250 2.1.5 ok\r\n",
                         "550 5.1.1 unknown\r\n", "451 4.2.0 greylisted\r\n", "354 go\r\n",
                         "250 2.6.0 queued\r\n"});
  auto m = message({"b@example.test", "c@example.test", "d@example.test"});
  m.recipients = {2, 0, 1};  // outcomes follow this order, with envelope indices
  auto r = deliver(server, io, {m});
  const auto& out = r.outcomes.at(0);
  ASSERT_EQ(out.size(), 3u);
  expect_outcome(out[0], 2, Status::kDelivered, Scope::kRecipient, 250);
  expect_outcome(out[1], 0, Status::kPermanent, Scope::kRecipient, 550);
  EXPECT_EQ(out[1].outcome.reply.summary(), "550 5.1.1 unknown");
  EXPECT_TRUE(out[1].outcome.remote);
  expect_outcome(out[2], 1, Status::kTemporary, Scope::kRecipient, 451);
  EXPECT_NE(server.received.find("RCPT TO:<d@example.test>\r\nRCPT TO:<b@example.test>\r\n"),
            std::string::npos);
}

TEST(SmtpClient, NoRecipientAcceptedSendsNoContent) {
  {  // pipelined: DATA was already sent; its 554 is read, then RSET
    asio::io_context io;
    FakeServer server(io, {kGreeting, ehlo_reply("PIPELINING"), "250 ok\r\n", "550 5.1.1 no\r\n",
                           "554 5.5.1 no valid recipients\r\n", "250 reset\r\n"});
    auto r = deliver(server, io, {message({"b@example.test"})});
    expect_outcome(r.outcomes.at(0).at(0), 0, Status::kPermanent, Scope::kRecipient, 550);
    EXPECT_TRUE(server.received.ends_with("DATA\r\nRSET\r\nQUIT\r\n")) << server.received;
    EXPECT_TRUE(r.reusable.at(0));
  }
  {  // one at a time: no DATA at all
    asio::io_context io;
    FakeServer server(
        io, {kGreeting, ehlo_reply("SIZE"), "250 ok\r\n", "451 4.3.0 later\r\n", "250 reset\r\n"});
    auto r = deliver(server, io, {message({"b@example.test"})});
    expect_outcome(r.outcomes.at(0).at(0), 0, Status::kTemporary, Scope::kRecipient, 451);
    EXPECT_TRUE(server.received.ends_with("RCPT TO:<b@example.test>\r\nRSET\r\nQUIT\r\n"));
  }
}

TEST(SmtpClient, DataAcceptedWithoutRecipientsIsEndedEmpty) {
  asio::io_context io;  // a broken peer: 354 although it refused every RCPT
  FakeServer server(io, {kGreeting, ehlo_reply("PIPELINING"), "250 ok\r\n", "550 5.1.1 no\r\n",
                         "354 go\r\n", "554 5.5.1 no recipients\r\n", "250 reset\r\n"});
  auto r = deliver(server, io, {message({"b@example.test"})});
  expect_outcome(r.outcomes.at(0).at(0), 0, Status::kPermanent, Scope::kRecipient, 550);
  EXPECT_TRUE(server.received.ends_with("DATA\r\n.\r\nRSET\r\nQUIT\r\n")) << server.received;
}

TEST(SmtpClient, ServiceClosingSettlesTheRest) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("SIZE"), "250 ok\r\n", "250 ok\r\n",
                         "421 4.3.2 shutting down\r\n<close>"});
  auto r = deliver(server, io, {message({"b@example.test", "c@example.test", "d@example.test"})});
  for (std::size_t i = 0; i < 3; ++i)
    expect_outcome(r.outcomes.at(0).at(i), i, Status::kTemporary, Scope::kHost, 421);
  EXPECT_FALSE(r.reusable.at(0));
  EXPECT_EQ(count(server.received, "RCPT TO"), 2u);
}

TEST(SmtpClient, FinalReplyFailsTheMessage) {
  for (auto [final, status] : {std::pair{"452 4.3.1 storage\r\n", Status::kTemporary},
                               std::pair{"554 5.6.0 bad content\r\n", Status::kPermanent}}) {
    asio::io_context io;
    FakeServer server(io, {kGreeting, ehlo_reply("PIPELINING"), "250 ok\r\n", "250 ok\r\n",
                           "250 ok\r\n", "354 go\r\n", final});
    auto r = deliver(server, io, {message({"b@example.test", "c@example.test"})});
    expect_outcome(r.outcomes.at(0).at(0), 0, status, Scope::kMessage, std::stoi(final));
    expect_outcome(r.outcomes.at(0).at(1), 1, status, Scope::kMessage, std::stoi(final));
    EXPECT_TRUE(r.reusable.at(0));  // the transaction is over either way
  }
}

TEST(SmtpClient, LmtpRepliesPerRecipient) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("PIPELINING"), "250 ok\r\n", "250 ok\r\n",
                         "250 ok\r\n", "550 5.1.1 unknown\r\n", "354 go\r\n",
                         "250 2.0.0 delivered\r\n452 4.2.2 mailbox full\r\n"});
  auto options = test_options();
  options.lmtp = true;
  auto r = deliver(server, io, {message({"b@example.test", "c@example.test", "d@example.test"})},
                   options);
  EXPECT_TRUE(server.received.starts_with("LHLO client.example.test\r\n"));
  const auto& out = r.outcomes.at(0);
  expect_outcome(out.at(0), 0, Status::kDelivered, Scope::kRecipient, 250);
  expect_outcome(out.at(1), 1, Status::kTemporary, Scope::kRecipient, 452);
  expect_outcome(out.at(2), 2, Status::kPermanent, Scope::kRecipient, 550);
  EXPECT_TRUE(r.reusable.at(0));
}

TEST(SmtpClient, SixHundredLineEhloIsAnErrorNotAHang) {
  std::string ehlo;
  for (int i = 0; i < 599; ++i) ehlo += "250-X-EXTENSION-" + std::to_string(i) + "\r\n";
  ehlo += "250 LAST\r\n";
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo});
  auto r = deliver(server, io, {});
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.failure->scope, Scope::kConnection);
  EXPECT_EQ(r.failure->reply.summary().substr(0, 9), "451 4.5.0");
  EXPECT_NE(r.failure->reply.lines.at(0).find("longer than 100 lines"), std::string::npos);
}

TEST(SmtpClient, SilentPeerTimesOut) {
  asio::io_context io;
  FakeServer server(io, {"<silent>"});
  auto options = test_options();
  options.timeouts.greeting = Millis(200);
  auto start = std::chrono::steady_clock::now();
  auto r = deliver(server, io, {}, options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  ASSERT_TRUE(r.failure);
  EXPECT_TRUE(r.failure->temporary());
  EXPECT_EQ(r.failure->scope, Scope::kConnection);
  EXPECT_EQ(r.failure->reply.summary(), "451 4.4.2 Connection with " + r.failure->remote_host +
                                            " timed out after 200 ms waiting for the greeting");
}

// The attempt's deadline ends a wait long before the command timeout would,
// and says so.
TEST(SmtpClient, DeadlineEndsTheWaitBeforeTheTimeout) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("SIZE"), "250 ok\r\n", "<silent>"});
  auto options = test_options();
  options.timeouts.command = Millis(60'000);
  options.deadline = std::chrono::steady_clock::now() + Millis(300);
  auto r = deliver(server, io, {message({"b@example.test"})}, options);
  ASSERT_EQ(r.outcomes.size(), 1u);
  const auto& out = r.outcomes.at(0).at(0).outcome;
  EXPECT_EQ(out.scope, Scope::kConnection);
  EXPECT_EQ(out.reply.summary(), "451 4.4.2 Connection with " + out.remote_host + " " +
                                     std::string(kBudgetSpent) +
                                     " waiting for the reply to RCPT TO");
}

TEST(SmtpClient, PastDeadlineDoesNotConnect) {
  asio::io_context io;
  FakeServer server(io, {kGreeting});
  auto options = test_options();
  options.deadline = std::chrono::steady_clock::now() - Millis(1);
  asio::io_context client_io;
  auto r = deliver(client_io, server.endpoint(), {}, options);
  ASSERT_TRUE(r.failure);
  EXPECT_NE(r.failure->reply.summary().find(kBudgetSpent), std::string::npos)
      << r.failure->reply.summary();
}

TEST(SmtpClient, SilenceAfterTheFinalDot) {
  asio::io_context io;
  FakeServer server(
      io, {kGreeting, ehlo_reply("SIZE"), "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "<silent>"});
  auto options = test_options();
  options.timeouts.data_done = Millis(200);
  auto r = deliver(server, io, {message({"b@example.test"})}, options);
  expect_outcome(r.outcomes.at(0).at(0), 0, Status::kTemporary, Scope::kConnection, 451);
  EXPECT_FALSE(r.reusable.at(0));
  EXPECT_FALSE(server.received.ends_with("QUIT\r\n"));  // the connection was dropped
}

// A cluster node whose lease may have run out never completes the transaction:
// the content goes out up to, not including, the final dot, and the
// connection is dropped, so the peer discards the message (SPEC §6).
TEST(SmtpClient, NoFinalDotWhenTheLeaseMayBeGone) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("SIZE"), "250 ok\r\n", "250 ok\r\n", "354 go\r\n"});
  auto options = test_options();
  int asked = 0;
  options.may_commit = [&asked] {
    ++asked;
    return false;
  };
  auto r = deliver(server, io, {message({"b@example.test"})}, options);
  EXPECT_EQ(asked, 1);
  expect_outcome(r.outcomes.at(0).at(0), 0, Status::kTemporary, Scope::kConnection, 451);
  EXPECT_EQ(r.outcomes.at(0).at(0).outcome.reply.enhanced, "4.4.0");
  EXPECT_EQ(server.received.find("\r\n.\r\n"), std::string::npos);
  EXPECT_FALSE(r.reusable.at(0));
}

TEST(SmtpClient, BdatLastIsNotCompletedWhenTheLeaseMayBeGone) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("PIPELINING BINARYMIME CHUNKING"), "250 ok\r\n",
                         "250 ok\r\n", "250 2.0.0 got it\r\n"});
  auto m = message({"b@example.test"}, std::string("A\r\n\0\xff\n", 7));
  m.envelope.body = smtp::BodyType::kBinaryMime;
  auto options = test_options();
  options.may_commit = [] { return false; };
  auto r = deliver(server, io, {m}, options);
  expect_outcome(r.outcomes.at(0).at(0), 0, Status::kTemporary, Scope::kConnection, 451);
  EXPECT_FALSE(server.received.ends_with(std::string("\xff\n")));  // the chunk is incomplete
}

TEST(SmtpClient, PeerClosesMidData) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("PIPELINING"), "250 ok\r\n", "550 5.1.1 no\r\n",
                         "250 ok\r\n", "354 go\r\n<close>"});
  std::string big;
  for (int i = 0; i < 20000; ++i)
    big += "a line of the message body, number " + std::to_string(i) + "\r\n";
  auto r = deliver(server, io, {message({"b@example.test", "c@example.test"}, big)});
  const auto& out = r.outcomes.at(0);
  expect_outcome(out.at(0), 0, Status::kPermanent, Scope::kRecipient, 550);  // settled before
  expect_outcome(out.at(1), 1, Status::kTemporary, Scope::kConnection, 451);
  EXPECT_EQ(out.at(1).outcome.reply.enhanced, "4.4.2");
  EXPECT_FALSE(r.reusable.at(0));
}

TEST(SmtpClient, BdatForBinaryMime) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("PIPELINING BINARYMIME CHUNKING"), "250 ok\r\n",
                         "250 ok\r\n", "250 2.0.0 got it\r\n"});
  std::string content("A\r\n.\r\n\0\xff\n", 9);
  auto m = message({"b@example.test"}, content);
  m.envelope.body = smtp::BodyType::kBinaryMime;
  auto r = deliver(server, io, {m});
  EXPECT_EQ(server.received, kEhlo +
                                 "MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n"
                                 "RCPT TO:<b@example.test>\r\nBDAT 9 LAST\r\n" +
                                 content + "QUIT\r\n");
  expect_outcome(r.outcomes.at(0).at(0), 0, Status::kDelivered, Scope::kRecipient, 250);
  EXPECT_TRUE(r.reusable.at(0));
}

TEST(SmtpClient, RefusedBeforeMailWhenThePeerCannotTakeIt) {
  auto binary = message({"b@example.test"});
  binary.envelope.body = smtp::BodyType::kBinaryMime;
  auto utf8 = message({"b\xc3\xbc@example.test"});
  utf8.envelope.smtputf8 = true;
  struct Case {
    std::string extensions;
    Message m;
    std::string reply;
  } cases[] = {
      {"SIZE=10", message({"b@example.test"}), "552 5.3.4"},
      {"BINARYMIME", binary, "554 5.6.3"},
      {"8BITMIME", utf8, "553 5.6.7"},
  };
  for (auto& c : cases) {
    asio::io_context io;
    FakeServer server(io, {kGreeting, ehlo_reply(c.extensions)});
    auto r = deliver(server, io, {c.m});
    expect_outcome(r.outcomes.at(0).at(0), 0, Status::kPermanent, Scope::kMessage,
                   std::stoi(c.reply));
    EXPECT_EQ(r.outcomes[0][0].outcome.reply.summary().substr(0, 9), c.reply);
    EXPECT_EQ(server.received, kEhlo + "QUIT\r\n");  // nothing sent for it
    EXPECT_TRUE(r.reusable.at(0));
  }
}

TEST(SmtpClient, Smtputf8WhenOffered) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("SMTPUTF8"), "250 ok\r\n", "250 ok\r\n",
                         "354 go\r\n", "250 ok\r\n"});
  auto m = message({"b\xc3\xbc@example.test"});
  m.envelope.smtputf8 = true;
  deliver(server, io, {m});
  EXPECT_NE(server.received.find("MAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT TO:<b\xc3\xbc@"),
            std::string::npos)
      << server.received;
}

TEST(SmtpClient, TwoMessagesOverOneConnection) {
  asio::io_context io;
  FakeServer server(io,
                    {kGreeting, ehlo_reply("PIPELINING"), "250 ok\r\n", "250 ok\r\n", "354 go\r\n",
                     "250 first\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 second\r\n"});
  auto r = deliver(server, io, {message({"b@example.test"}), message({"c@example.test"})});
  ASSERT_EQ(r.outcomes.size(), 2u);
  EXPECT_EQ(r.outcomes[0].at(0).outcome.reply.lines.at(0), "first");
  EXPECT_EQ(r.outcomes[1].at(0).outcome.reply.lines.at(0), "second");
  EXPECT_EQ(r.reusable, (std::vector<bool>{true, true}));
  EXPECT_EQ(count(server.received, "MAIL FROM:"), 2u);
  EXPECT_EQ(count(server.received, "EHLO"), 1u);
}

TEST(SmtpClient, StartTlsThenEhloAgain) {
  asio::io_context io;
  FakeServer server(io,
                    {kGreeting, ehlo_reply("STARTTLS SIZE"), "<tls>", ehlo_reply("PIPELINING"),
                     "250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"},
                    server_tls());
  auto options = test_options();
  options.tls = tls::client_context(false);
  options.require_tls = true;
  auto r = deliver(server, io, {message({"b@example.test"})}, options);
  ASSERT_FALSE(r.failure) << r.failure->reply.summary();
  EXPECT_TRUE(r.tls);
  EXPECT_EQ(server.sni, "mx.example.test");
  EXPECT_TRUE(
      server.received.starts_with(kEhlo + "STARTTLS\r\n" + kEhlo + "MAIL FROM:<a@example.org>\r\n"))
      << server.received;  // no SIZE=: the capabilities after TLS count
  EXPECT_TRUE(r.capabilities.pipelining && !r.capabilities.starttls);
  expect_outcome(r.outcomes.at(0).at(0), 0, Status::kDelivered, Scope::kRecipient, 250);
  bool noted = std::any_of(r.transcript.begin(), r.transcript.end(),
                           [](const std::string& l) { return l.starts_with("* TLS: TLSv1."); });
  EXPECT_TRUE(noted);
}

TEST(SmtpClient, FailedTlsHandshakeIsAConnectionFailure) {
  asio::io_context io;  // the server has no certificate: the handshake fails
  FakeServer server(io, {kGreeting, ehlo_reply("STARTTLS"), "<tls>"},
                    std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server));
  auto options = test_options();
  options.tls = tls::client_context(false);
  auto r = deliver(server, io, {}, options);
  ASSERT_TRUE(r.failure);
  EXPECT_TRUE(r.failure->temporary());
  EXPECT_EQ(r.failure->scope, Scope::kConnection);
  EXPECT_EQ(r.failure->reply.summary().substr(0, 9), "451 4.7.5");
}

TEST(SmtpClient, RequiredTlsNotOffered) {
  asio::io_context io;
  FakeServer server(io, {kGreeting, ehlo_reply("SIZE")});
  auto options = test_options();
  options.tls = tls::client_context(false);
  options.require_tls = true;
  auto r = deliver(server, io, {}, options);
  ASSERT_TRUE(r.failure);
  EXPECT_TRUE(r.failure->temporary());
  EXPECT_EQ(r.failure->scope, Scope::kHost);
  EXPECT_EQ(r.failure->reply.summary().substr(0, 9), "451 4.7.4");
  EXPECT_EQ(server.received, kEhlo + "QUIT\r\n");
}

TEST(SmtpClient, ConnectionRefused) {
  asio::io_context io;
  tcp::endpoint endpoint;
  {
    tcp::acceptor unused(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    endpoint = unused.local_endpoint();
  }
  auto r = deliver(io, endpoint, {});
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.failure->scope, Scope::kConnection);
  EXPECT_EQ(r.failure->reply.summary(),
            "451 4.4.1 Connection refused by mx.example.test[127.0.0.1]:" +
                std::to_string(endpoint.port()));
}

}  // namespace
}  // namespace tern::delivery
