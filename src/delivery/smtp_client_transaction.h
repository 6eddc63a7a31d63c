// One mail transaction of the outbound client (RFC 5321 §3.3): MAIL, RCPT for
// each recipient, then DATA with the dot-stuffed content, or BDAT LAST with the
// raw content for BINARYMIME (RFC 3030). With PIPELINING the commands go in one
// write and the replies are read in order (RFC 2920 §3.1). Every listed
// recipient ends with exactly one Outcome; a lost connection, a timeout or a
// 421 settles all that are still open. Used by SmtpClient::send only.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/client_connection.h"
#include "delivery/outcome.h"
#include "delivery/smtp_client.h"
#include "net/awaitable.h"
#include "queue/envelope.h"

namespace tern::delivery {

class Transaction {
 public:
  Transaction(ClientConnection& connection, const ClientOptions& options, const Capabilities& peer,
              const std::string& peer_name)
      : connection_(connection), options_(options), peer_(peer), peer_name_(peer_name) {}

  net::awaitable<std::vector<RecipientOutcome>> run(const queue::Envelope& envelope,
                                                    const std::vector<std::size_t>& recipients,
                                                    std::string_view content);
  // The session is back where it started: the final reply was read or RSET
  // accepted, and nothing is pending (RFC 5321 §4.1.1.4, §4.1.1.5).
  bool clean() const { return clean_ && !broken_; }

 private:
  // MAIL, RCPT (and DATA unless binary); false when the transaction is over.
  net::awaitable<bool> envelope_pipelined(const queue::Envelope& envelope,
                                          const std::vector<std::size_t>& recipients,
                                          std::uint64_t size, bool with_data);
  net::awaitable<bool> envelope_one_by_one(const queue::Envelope& envelope,
                                           const std::vector<std::size_t>& recipients,
                                           std::uint64_t size, bool with_data);
  net::awaitable<void> transfer(std::string_view content, bool binary);
  net::awaitable<bool> send_content(std::string_view command, std::string_view content,
                                    bool binary);
  net::awaitable<void> final_replies();
  // Ends a transaction that will not deliver: finishes a DATA the peer
  // accepted anyway, then RSET.
  net::awaitable<void> abandon();

  net::awaitable<std::optional<smtp::Reply>> read(Millis timeout, std::string_view waiting_for);
  net::awaitable<bool> write(std::string_view bytes, Millis timeout, std::string_view what);
  net::awaitable<std::optional<smtp::Reply>> exchange(std::string_view line, Millis timeout,
                                                      std::string_view verb);

  void recipient_replied(std::size_t position, const smtp::Reply& reply);
  void mail_refused(const smtp::Reply& reply);
  Outcome final_outcome(const smtp::Reply& reply, Scope scope) const;
  Outcome peer_failure(const smtp::Reply& reply, Scope scope) const;
  // Settles every open recipient and closes: the session cannot go on.
  void lost(Outcome outcome);
  void settle(std::size_t position, Outcome outcome);

  ClientConnection& connection_;
  const ClientOptions& options_;
  const Capabilities& peer_;
  const std::string& peer_name_;
  std::vector<std::optional<Outcome>> outcomes_;  // by position in the listed recipients
  std::vector<std::size_t> accepted_;             // positions whose RCPT got 2xx, in order
  std::optional<smtp::Reply> data_reply_;         // the reply to DATA, once read
  bool clean_ = false;
  bool broken_ = false;
};

}  // namespace tern::delivery
