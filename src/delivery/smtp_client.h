// Outbound SMTP (RFC 5321) and LMTP (RFC 2033) delivery over one connection:
// greeting, EHLO/LHLO (HELO when EHLO is refused), opportunistic STARTTLS
// (RFC 3207; then EHLO again), and transactions — MAIL with SIZE/BODY/SMTPUTF8
// and, when the next hop supports DSN, RET/ENVID; RCPT with NOTIFY/ORCPT; DATA
// with dot-stuffing, or BDAT when the message is BINARYMIME (RFC 3030) —
// pipelined when PIPELINING is offered (RFC 2920). Each transaction returns an
// Outcome per recipient (delivery/outcome.h). After a clean transaction the
// connection can carry the next message to the same destination.
//
// Classification: a failure to connect, a 4xx/5xx greeting or EHLO, a 4xx to
// MAIL, a broken connection or a timeout reaches the host (Scope kHost or
// kConnection: the caller tries the next MX host); a 5xx to MAIL or to the end
// of data reaches the message; RCPT replies reach their recipient. Timeouts of
// RFC 5321 §4.5.3.2 (configurable).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/client_connection.h"
#include "delivery/outcome.h"
#include "net/awaitable.h"
#include "queue/envelope.h"

namespace tern::delivery {

struct ClientTimeouts {  // RFC 5321 §4.5.3.2
  Millis connect{30'000};
  Millis greeting{300'000};
  Millis command{300'000};     // EHLO, MAIL, RCPT, RSET, QUIT
  Millis data_init{120'000};   // the reply to DATA
  Millis data_block{180'000};  // each write of the content
  Millis data_done{600'000};   // the reply after the final dot
};

struct ClientOptions {
  std::string helo_name;  // our host name
  std::string peer_name;  // the MX host name, for SNI and reports
  ClientTimeouts timeouts;
  std::shared_ptr<asio::ssl::context> tls;  // null: never STARTTLS
  bool require_tls = false;                 // no STARTTLS offered: a temporary failure
  bool lmtp = false;                        // LHLO, and one reply per recipient after DATA
  Transcript transcript;                    // optional
  std::optional<TimePoint> deadline;        // the attempt's time budget ends here
  // Asked just before the end of data goes out (the final dot, the last
  // piece of BDAT LAST): false means the transaction must not be completed
  // (a cluster node whose lease on the message may have run out, SPEC §6).
  std::function<bool()> may_commit;
};

struct Capabilities {
  bool esmtp = false;
  bool pipelining = false, dsn = false, eightbitmime = false, binarymime = false, chunking = false,
       smtputf8 = false, starttls = false, enhanced_codes = false;
  std::optional<std::uint64_t> size_limit;  // SIZE n (0 or absent: no limit announced)
  std::vector<std::string> auth;            // mechanisms
  static Capabilities parse(const smtp::Reply& ehlo_reply);
};

class SmtpClient {
 public:
  struct Opened {
    std::unique_ptr<SmtpClient> client;  // null on failure
    Outcome failure;                     // why, when client is null (Scope kConnection or kHost)
  };
  // Connects to endpoint and gets the session ready for MAIL.
  static net::awaitable<Opened> open(asio::any_io_executor executor,
                                     asio::ip::tcp::endpoint endpoint, ClientOptions options);
  ~SmtpClient();

  // One transaction for the listed recipients (indices into envelope.recipients).
  // Returns one outcome per listed recipient, in the same order.
  net::awaitable<std::vector<RecipientOutcome>> send(const queue::Envelope& envelope,
                                                     const std::vector<std::size_t>& recipients,
                                                     std::string_view content);
  // QUIT and close (waits for 221 at most timeouts.command, whatever the deadline).
  net::awaitable<void> quit();
  // The end of the time budget of the attempt that uses the session now.
  void set_deadline(std::optional<TimePoint> deadline);

  bool reusable() const { return reusable_; }
  const Capabilities& capabilities() const { return capabilities_; }
  // "mx1.example.test[127.0.0.2]:25"
  const std::string& peer() const { return peer_; }
  bool tls() const;

 private:
  SmtpClient(std::unique_ptr<ClientConnection> connection, ClientOptions options);

  std::unique_ptr<ClientConnection> connection_;
  ClientOptions options_;
  Capabilities capabilities_;
  std::string peer_;
  bool reusable_ = false;
};

}  // namespace tern::delivery
