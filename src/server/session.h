// The inbound SMTP session as a state machine with no I/O (DESIGN.md principle 1).
//
// The connection code feeds bytes through an InputBuffer and calls process();
// each Step carries at most one reply and tells the caller what to do next:
// keep going, read more bytes, make the pending message durable (kCommit, then
// committed()), start TLS, or close. Handlers never write; replies come from
// smtp/replies.h. The verbs are split by group: session_hello.cpp (greeting,
// EHLO/HELO, RSET, NOOP, VRFY, HELP, QUIT), session_mail.cpp (MAIL, RCPT and the
// relay policy), session_data.cpp (DATA, BDAT, the message and its headers),
// session_auth.cpp (STARTTLS, AUTH). Sender authentication (DKIM signing,
// the sender checks) is fed the message in session_data.cpp through
// message_auth.h; the checks that need DNS are kCheckSender, done by the caller.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim_verify.h"
#include "auth/sender_auth.h"
#include "config/config.h"
#include "queue/spool.h"
#include "server/auth.h"
#include "server/message_auth.h"
#include "smtp/address.h"
#include "smtp/command.h"
#include "smtp/data_stream.h"
#include "smtp/headers.h"
#include "smtp/input_buffer.h"
#include "smtp/params.h"
#include "smtp/reply.h"
#include "util/cidr.h"

namespace tern::server {

struct ClientInfo {
  std::string address;  // "127.0.0.1", "::1"
  util::IpAddress ip;
};

// Sees what the session reads, for the protocol log (SPEC §5). Secrets never
// reach it: AUTH exchanges are masked before received() is called.
class SessionObserver {
 public:
  virtual ~SessionObserver() = default;
  virtual void received(std::string_view line) = 0;
  virtual void info(std::string_view text) = 0;
};

struct SessionEnv {
  const config::Config* config = nullptr;
  const config::Listener* listener = nullptr;
  queue::Spool* spool = nullptr;
  const Authenticator* authenticator = nullptr;  // null: no AUTH on this listener
  ClientInfo client;
  bool tls_available = false;  // STARTTLS can be offered
  bool tls_active = false;     // the connection is already encrypted (implicit TLS)
  SessionObserver* observer = nullptr;
  // [[dkim]]: mail from authenticated clients and relay networks is signed
  // with these keys (null: no signing).
  std::shared_ptr<const DkimKeyring> dkim_keys;
  // [sender_auth] verify, with a resolver at hand: mail from other clients
  // is checked (kCheckSender) before it is committed.
  bool verify_senders = false;
};

// kStore: the message read so far is large; write it to the spool
// (take_part(), then part_stored()) before reading more, so that memory per
// connection stays bounded (SPEC §4 Robustness).
// kCheckSender: the message is complete; run its DKIM verification and the
// sender checks (take_sender_check(), then sender_checked()) before kCommit.
enum class Action {
  kContinue,
  kNeedInput,
  kCommit,
  kStore,
  kStartTls,
  kVerifyCredentials,
  kCheckSender,
  kClose
};

// What the sender checks of one message need: its DKIM verifier, fed the
// whole message (finish() it with the resolver), and the SPF/DMARC inputs
// (their dkim results to be filled from the verifier).
struct SenderCheck {
  std::unique_ptr<auth::DkimVerifier> dkim;
  auth::SenderAuthInput input;
};

// A piece of the message being received, to be written with Spool::store_part.
struct MessagePart {
  std::uint64_t id = 0;
  std::uint32_t seq = 0;
  std::string bytes;
};

struct Step {
  std::optional<smtp::Reply> reply;
  Action action = Action::kContinue;
};

class Session {
 public:
  explicit Session(SessionEnv env);
  ~Session();

  smtp::Reply greeting() const;
  Step process(smtp::InputBuffer& in);
  // After Action::kCommit: the message to make durable, then its outcome.
  queue::NewMessage take_message();
  Step committed(const queue::CommitResult& result);
  // After Action::kStore: the part to write, then how it went.
  MessagePart take_part();
  Step part_stored(const queue::CommitResult& result);
  // After Action::kCheckSender: what to check, then the verdict (kCommit, or
  // the 550 5.7.509 of a DMARC reject with nothing stored).
  SenderCheck take_sender_check();
  Step sender_checked(const auth::SenderAuthVerdict& verdict);
  // Messages whose stored parts will never be committed (RSET, a refused or
  // abandoned message, the connection's end): the caller discards them.
  std::vector<std::uint64_t> take_abandoned();
  // The connection is closing: whatever was stored for an open message is abandoned.
  void connection_closed();
  // After Action::kStartTls, once the handshake succeeded (RFC 3207 §4.2:
  // forget everything, the client must say EHLO again). description names the
  // protocol and cipher for the Received: header.
  void tls_established(std::string description = {});

  smtp::Reply timed_out() const;
  bool reading_message() const { return mode_ == Mode::kData || mode_ == Mode::kChunk; }
  // A message is being received: DATA, or BDAT chunks until the LAST one.
  bool message_open() const { return reading_message() || tx_.chunking; }
  bool tls_active() const { return env_.tls_active; }
  const std::string& authenticated_user() const { return auth_user_; }
  std::uint32_t messages_accepted() const { return messages_accepted_; }
  // The id and Message-ID of the message being committed (for logs).
  std::uint64_t pending_id() const { return committing_id_; }
  // After Action::kVerifyCredentials: check the password (slow, off the event
  // loop; reads only the configuration), then hand the result back.
  std::optional<std::string> verify_credentials() const;
  Step credentials_verified(std::optional<std::string> user);

 private:
  enum class Mode { kCommand, kData, kChunk, kAuth };

  struct Transaction {
    bool active = false;
    smtp::Address sender;
    smtp::MailParams params;
    std::vector<queue::Recipient> recipients;
    std::string content;   // what has not been stored as a part yet
    std::uint64_t id = 0;  // InternalId, taken when the first part is stored
    std::uint32_t parts = 0;
    std::uint64_t stored = 0;  // octets already in stored parts
    std::optional<queue::SpoolStatus> store_failed;
    std::optional<smtp::HeaderScan> headers;  // scanned before the first part is stored
    bool chunking = false;                    // BDAT used in this transaction
    bool too_big = false;
    std::shared_ptr<MessageAuth> auth;  // made when the message's first octets are handed on
    std::uint64_t size() const { return stored + content.size(); }
  };

  // session.cpp
  Step command(smtp::InputBuffer::LineResult line);
  Step answer(smtp::Reply reply, Action action = Action::kContinue);
  void reset_transaction();
  bool may_relay() const;

  // session_hello.cpp
  Step cmd_hello(std::string_view arg, bool extended);
  Step cmd_rset(std::string_view arg);
  Step cmd_noop(std::string_view arg);
  Step cmd_vrfy(std::string_view arg);
  Step cmd_help(std::string_view arg);
  Step cmd_quit(std::string_view arg);
  smtp::Reply ehlo_reply() const;

  // session_mail.cpp
  Step cmd_mail(std::string_view arg);
  Step cmd_rcpt(std::string_view arg);

  // session_data.cpp
  Step cmd_data(std::string_view arg);
  Step cmd_bdat(std::string_view arg);
  Step read_data(smtp::InputBuffer& in);
  Step read_chunk(smtp::InputBuffer& in);
  Step finish_message();
  bool should_store() const;
  std::string received_header(std::uint64_t id) const;
  MessageAuth& message_auth();

  // session_auth.cpp
  Step cmd_starttls(std::string_view arg);
  Step cmd_auth(std::string_view arg);
  Step auth_response(std::string_view line);
  bool auth_offered() const;

  SessionEnv env_;
  Mode mode_ = Mode::kCommand;
  std::string helo_;  // empty until EHLO/HELO
  bool extended_ = false;
  std::string auth_user_;
  std::string tls_description_;
  Transaction tx_;
  std::optional<smtp::DataDecoder> decoder_;
  std::uint64_t chunk_remaining_ = 0;
  std::uint64_t chunk_size_ = 0;
  bool chunk_last_ = false;
  std::optional<smtp::Reply> chunk_error_;
  queue::NewMessage pending_;
  std::uint64_t committing_id_ = 0;
  std::uint32_t committing_parts_ = 0;
  std::string committing_message_id_;
  std::optional<SenderCheck> sender_check_;  // between kCheckSender and sender_checked()
  std::uint32_t errors_ = 0;
  std::uint32_t auth_failures_ = 0;
  std::uint32_t messages_accepted_ = 0;
  std::optional<SaslExchange> sasl_;
  std::vector<std::uint64_t> abandoned_;
};

}  // namespace tern::server
