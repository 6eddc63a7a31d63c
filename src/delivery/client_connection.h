// The client side of an SMTP connection, for outbound delivery, LMTP, `tern
// check` and `tern talk`: connect with a deadline, read whole replies with a
// deadline (smtp::ReplyParser), send lines, upgrade to TLS (STARTTLS, or TLS at
// once for port 465). Every byte can be shown to a transcript callback as it is
// sent or received, which is how `tern check` prints the conversation live.
// Nothing here knows the order of SMTP commands: smtp_client.h does.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "net/awaitable.h"
#include "net/stream.h"
#include "smtp/input_buffer.h"
#include "smtp/reply.h"
#include "smtp/reply_parser.h"

namespace tern::delivery {

using Millis = std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;

enum class Direction { kSent, kReceived, kInfo };
// Called with each line sent or received (without CR LF) and with notes such
// as "connected to 127.0.0.2:25 in 3 ms" or "TLSv1.3 with cipher ...".
using Transcript = std::function<void(Direction, std::string_view)>;

// What an operation cut short by the deadline reports instead of "timed out after …".
inline constexpr std::string_view kBudgetSpent =
    "reached the end of the delivery attempt's time ([delivery] attempt_timeout)";

struct ReadResult {
  std::optional<smtp::Reply> reply;  // set when a whole reply arrived
  std::string error;  // else: "timed out after 300 s", "connection closed", "not SMTP: ...",
                      // or kBudgetSpent
  bool timed_out = false;
};

class ClientConnection {
 public:
  // Connects to endpoint within timeout. On failure returns null and sets
  // error to what happened ("Connection refused", "timed out after 30 s").
  // deadline, when set, ends the attempt earlier than timeout and stays on
  // the connection (set_deadline).
  static net::awaitable<std::unique_ptr<ClientConnection>> connect(
      asio::any_io_executor executor, asio::ip::tcp::endpoint endpoint, Millis timeout,
      std::string& error, Transcript transcript = {}, std::optional<TimePoint> deadline = {});
  ~ClientConnection();

  net::awaitable<ReadResult> read_reply(Millis timeout);
  // Sends bytes as they are (lines must carry their CR LF); false on failure.
  net::awaitable<bool> send(std::string_view bytes, Millis timeout);
  // TLS handshake as client; sni may be empty. Returns "" or the error.
  net::awaitable<std::string> start_tls(asio::ssl::context& context, const std::string& sni,
                                        Millis timeout);

  // An end no operation may pass, whatever its own timeout (a delivery
  // attempt's time budget); nullopt: only the timeouts count.
  void set_deadline(std::optional<TimePoint> deadline) { deadline_ = deadline; }

  bool tls() const { return stream_.tls(); }
  SSL* ssl() const { return stream_.ssl(); }
  const asio::ip::tcp::endpoint& endpoint() const { return endpoint_; }
  void set_transcript(Transcript transcript) { transcript_ = std::move(transcript); }
  void close();

 private:
  ClientConnection(asio::ip::tcp::socket socket, asio::ip::tcp::endpoint endpoint,
                   Transcript transcript);

  net::Stream stream_;
  asio::ip::tcp::endpoint endpoint_;
  Transcript transcript_;
  smtp::InputBuffer in_;
  smtp::ReplyParser parser_;
  std::optional<TimePoint> deadline_;
};

}  // namespace tern::delivery
