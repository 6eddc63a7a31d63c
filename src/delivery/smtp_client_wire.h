// What the outbound SMTP client puts on the wire and says about it, without
// I/O: MAIL and RCPT command lines with the ESMTP parameters the next hop
// supports, the checks that refuse a message before MAIL (SIZE, BINARYMIME,
// SMTPUTF8), the DATA content dot-stuffed (RFC 5321 §4.5.2), and the replies
// tern makes up when the failure is local (timeouts, a lost connection).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/client_connection.h"
#include "delivery/smtp_client.h"
#include "queue/envelope.h"
#include "smtp/reply.h"

namespace tern::delivery {

// "MAIL FROM:<a@b> SIZE=123 BODY=8BITMIME\r\n": SIZE (RFC 1870), BODY (RFC
// 6152, RFC 3030), SMTPUTF8 (RFC 6531) and RET/ENVID (RFC 3461) only where the
// peer announced the extension.
std::string mail_command(const queue::Envelope& envelope, const Capabilities& peer,
                         std::uint64_t size);
// "RCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b\r\n"; NOTIFY and
// ORCPT only when the peer supports DSN.
std::string rcpt_command(const queue::Recipient& recipient, const Capabilities& peer);

// Why this peer cannot take the message at all, decided before MAIL: larger
// than its SIZE (552 5.3.4), BINARYMIME without BINARYMIME and CHUNKING (554
// 5.6.3), non-ASCII addresses or headers without SMTPUTF8 (553 5.6.7, RFC 6531
// §3.2). nullopt when it can.
std::optional<smtp::Reply> refusal_before_mail(const queue::Envelope& envelope,
                                               const std::vector<std::size_t>& recipients,
                                               std::string_view content, const Capabilities& peer,
                                               std::string_view peer_name);

// The content as it goes after DATA: a "." at the start of a line doubled, a
// bare CR or bare LF sent as CR LF (so "A\r.\r" can never end the data at a
// receiver that accepts <CR>.<CR>), a CR LF added when the content does not
// end with one, then ".\r\n". Produced piece by piece so a large message is
// never copied whole nor line by line. (BDAT with BODY=BINARYMIME is length-
// delimited and carries the content unchanged, RFC 3030 §3.)
class DotStuffer {
 public:
  explicit DotStuffer(std::string_view content) : content_(content) {}
  bool done() const { return done_; }
  // Replaces out with the next piece: whole lines, about max octets.
  void next(std::string& out, std::size_t max);

 private:
  std::string_view content_;
  std::size_t pos_ = 0;
  bool line_start_ = true;
  bool done_ = false;
};

// 451 4.4.2 (timed out, connection lost) or 451 4.5.0 (not SMTP) for a read
// that brought no reply; waiting_for is e.g. "the reply to RCPT TO".
smtp::Reply lost_reply(const ReadResult& result, std::string_view peer,
                       std::string_view waiting_for);
// 451 4.4.2 for a write that failed; sending is e.g. "the message content".
smtp::Reply send_failed_reply(std::string_view peer, std::string_view sending);
// 451 4.4.0: the end of data was not sent because this node's lease on the
// message may have run out (ClientOptions::may_commit said no).
smtp::Reply lease_lost_reply(std::string_view peer);

}  // namespace tern::delivery
