// delivery::ClientConnection: the client end of an SMTP/LMTP connection.
// Every operation runs against a deadline: a steady_timer races it and, when
// it fires first, cancels the socket so the operation ends at once with
// operation_aborted (a silent peer never holds a delivery longer than the
// RFC 5321 §4.5.3.2 timeouts allow).
#include "delivery/client_connection.h"

#include <asio/ssl/error.hpp>
#include <asio/steady_timer.hpp>

namespace tern::delivery {

namespace {

constexpr std::size_t kReadSize = 4096;

// Cancels the socket's operations when the time is up. The timer's handler may
// run after the operation has finished (both completions queued at once) or
// after the connection is gone; the shared state tells it not to touch the
// socket then.
class Deadline {
 public:
  Deadline(asio::ip::tcp::socket& socket, Millis timeout)
      : state_(std::make_shared<State>()), timer_(socket.get_executor(), timeout) {
    timer_.async_wait([state = state_, &socket](std::error_code ec) {
      if (ec || state->done) return;
      state->expired = true;
      std::error_code ignored;
      socket.cancel(ignored);
    });
  }
  ~Deadline() {
    state_->done = true;
    timer_.cancel();
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  bool expired() const { return state_->expired; }

 private:
  struct State {
    bool done = false;
    bool expired = false;
  };
  std::shared_ptr<State> state_;
  asio::steady_timer timer_;
};

std::string duration_text(Millis d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

std::string endpoint_text(const asio::ip::tcp::endpoint& ep) {
  auto a = ep.address();
  std::string out = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return out + ":" + std::to_string(ep.port());
}

// The time an operation may take: its own timeout, or less when the
// deadline comes first (then `budget` says so, for the error text).
struct Limit {
  Millis timeout;
  bool budget = false;
};

Limit limit_of(Millis timeout, const std::optional<TimePoint>& deadline) {
  if (!deadline) return {timeout};
  auto left = std::chrono::duration_cast<Millis>(*deadline - std::chrono::steady_clock::now());
  if (left < timeout) return {std::max(left, Millis(0)), true};
  return {timeout};
}

std::string expired_text(const Limit& limit) {
  return limit.budget ? std::string(kBudgetSpent)
                      : "timed out after " + duration_text(limit.timeout);
}

bool is_eof(const std::error_code& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace

ClientConnection::ClientConnection(asio::ip::tcp::socket socket, asio::ip::tcp::endpoint endpoint,
                                   Transcript transcript)
    : stream_(std::move(socket)),
      endpoint_(std::move(endpoint)),
      transcript_(std::move(transcript)) {}

ClientConnection::~ClientConnection() {
  close();
}

net::awaitable<std::unique_ptr<ClientConnection>> ClientConnection::connect(
    asio::any_io_executor executor, asio::ip::tcp::endpoint endpoint, Millis timeout,
    std::string& error, Transcript transcript, std::optional<TimePoint> deadline) {
  asio::ip::tcp::socket socket(executor);
  auto start = std::chrono::steady_clock::now();
  Limit limit = limit_of(timeout, deadline);
  if (limit.timeout.count() == 0) {
    error = expired_text(limit);
    co_return nullptr;
  }
  std::error_code ec;
  bool expired = false;
  {
    Deadline timer(socket, limit.timeout);
    std::tie(ec) = co_await socket.async_connect(endpoint, net::use_tuple);
    expired = timer.expired();
  }
  if (ec) {
    error = expired ? expired_text(limit) : ec.message();
    co_return nullptr;
  }
  std::error_code ignored;
  socket.set_option(asio::ip::tcp::no_delay(true), ignored);  // commands are small and awaited
  auto ms = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start);
  std::unique_ptr<ClientConnection> connection(
      new ClientConnection(std::move(socket), endpoint, std::move(transcript)));
  connection->deadline_ = deadline;
  if (connection->transcript_)
    connection->transcript_(Direction::kInfo, "connected to " + endpoint_text(endpoint) + " in " +
                                                  std::to_string(ms.count()) + " ms");
  co_return connection;
}

net::awaitable<ReadResult> ClientConnection::read_reply(Millis timeout) {
  ReadResult result;
  Limit limit = limit_of(timeout, deadline_);
  Deadline deadline(stream_.socket(), limit.timeout);
  for (;;) {
    std::string_view before = in_.data();
    smtp::Reply reply;
    std::string error;
    auto status = parser_.parse(in_, reply, error);
    if (transcript_) {  // the lines just taken from the buffer, as they came
      std::string_view taken = before.substr(0, before.size() - in_.data().size());
      for (std::size_t lf; (lf = taken.find('\n')) != std::string_view::npos;
           taken.remove_prefix(lf + 1)) {
        auto line = taken.substr(0, lf);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        transcript_(Direction::kReceived, line);
      }
    }
    if (status == smtp::ReplyParser::Status::kReply) {
      result.reply = std::move(reply);
      co_return result;
    }
    if (status == smtp::ReplyParser::Status::kError) {
      result.error = "not SMTP: " + error;
      co_return result;
    }
    if (deadline.expired()) break;  // the last read completed just as the time ran out
    char* p = in_.prepare(kReadSize);
    auto [ec, n] = co_await stream_.read_some(asio::buffer(p, in_.writable()));
    if (ec) {
      if (deadline.expired()) break;
      result.error = is_eof(ec) ? "connection closed" : ec.message();
      co_return result;
    }
    in_.commit(n);
  }
  result.timed_out = true;
  result.error = expired_text(limit);
  co_return result;
}

net::awaitable<bool> ClientConnection::send(std::string_view bytes, Millis timeout) {
  if (transcript_) {
    for (std::string_view rest = bytes; !rest.empty();) {
      auto end = rest.find("\r\n");
      transcript_(Direction::kSent, rest.substr(0, end));
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 2);
    }
  }
  Deadline deadline(stream_.socket(), limit_of(timeout, deadline_).timeout);
  auto [ec, n] = co_await stream_.write(asio::buffer(bytes.data(), bytes.size()));
  co_return !ec && n == bytes.size();
}

net::awaitable<std::string> ClientConnection::start_tls(asio::ssl::context& context,
                                                        const std::string& sni, Millis timeout) {
  // RFC 3207 §4.2: nothing the server sent before the handshake counts.
  in_.clear();
  parser_ = smtp::ReplyParser();
  std::error_code ec;
  bool expired = false;
  Limit limit = limit_of(timeout, deadline_);
  {
    Deadline deadline(stream_.socket(), limit.timeout);
    ec = co_await stream_.handshake(context, false, sni);
    expired = deadline.expired();
  }
  if (ec || expired) {
    std::string error = expired ? expired_text(limit) : ec.message();
    if (transcript_) transcript_(Direction::kInfo, "TLS handshake failed: " + error);
    co_return error;
  }
  if (transcript_) transcript_(Direction::kInfo, "TLS: " + net::tls_description(stream_.ssl()));
  co_return std::string();
}

void ClientConnection::close() {
  stream_.close();
}

}  // namespace tern::delivery
