// libFuzzer target: the path of a message from a hostile client to a hostile
// next hop, without sockets or threads. A real server::Session over a memory
// spool that encodes and decodes every envelope the way the RocksDB spool does
// on its commit thread; then delivery attempts with fake outcomes
// (queue::AttemptRecorder, as the scheduler uses it), the peer's replies read
// by smtp::ReplyParser from the fuzzer's bytes, DSNs composed and spooled.
//
// Input:  F C client-bytes "\n--peer--\n" P record*
//    or:  an envelope record as the spool stores it, starting with "{"
//   F  session flags: 1 AUTH offered, 2 AUTH before TLS, 4 require TLS,
//      8 no room in the spool, 16 client in the relay network, 32 STARTTLS
//      offered, 64 the spool fails a commit, 128 TLS from the start
//   C  the client bytes arrive in pieces of C|1 octets (or 1/1024 of them
//      when that is more); in them "@@x" N L P (P being L octets) stands for
//      P repeated N × 2048 times, 1 MB at most (a large message, a long line)
//   P  the next hop's EHLO keywords: 1 DSN, 2 SMTPUTF8, 4 8BITMIME,
//      8 BINARYMIME, 16 CHUNKING, 32 SIZE 1000, 64 PIPELINING; 128 delay
//      notices due at once. The content goes out after DATA in pieces of
//      P >> 4 octets (at least 1).
//   record: op adv len(2, big-endian) wire-bytes — one delivery outcome:
//      op & 3   0 permanence from the reply code, 1 delivered, 2 temporary,
//               3 permanent;  op & 4 the next hop lacks DSN (relayed);
//      op & 8   LMTP instead of Maildir for a local recipient;
//      op & 16  the administrator bounces the message (tern queue bounce);
//      op >> 5  which queued message the attempt is for;
//      adv      the clock moves on adv × 15 minutes before the attempt;
//      wire     what the next hop answered, read as a reply (RFC 5321 §4.2);
//               bytes that are no reply give tern's own 451 4.5.0.
//   An attempt takes one record per pending recipient (the last one repeats).
//
// Findings (abort): queue::encode throwing (the commit thread refuses the
// change: the client gets 4xx for a good message, or a delivery's outcome is
// lost and the message is sent again and again); an envelope that does not come
// back from encode/decode field for field; a record decode_envelope rejects
// with anything but std::runtime_error; an exception other than a
// std::exception from the session (Connection::run catches those and ends the
// connection); parts of an uncommitted message left in the spool; a DSN without
// its RFC 3464 structure, with a bare CR or LF, or for a message from <> (RFC
// 3461 §6.2); a MAIL or RCPT line with CR, LF or NUL inside; content sent after
// DATA with a bare CR or LF or an early end-of-data marker. An attempt that
// throws holds its message, as the scheduler does. TERN_FUZZ_STRICT=1 also
// stops on the exceptions the server catches (a connection ended with 421, a
// message held); TERN_FUZZ_IGNORE passes over known findings (checks.h);
// TERN_FUZZ_TRACE=1 shows what happens to each message.
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

#include "checks.h"
#include "config/config.h"
#include "delivery/outcome.h"
#include "delivery/smtp_client_wire.h"
#include "fuzz_config.h"
#include "queue/attempt.h"
#include "queue/envelope.h"
#include "queue/spool_memory.h"
#include "server/auth.h"
#include "server/session.h"
#include "smtp/input_buffer.h"
#include "smtp/reply_parser.h"
#include "util/text.h"

using namespace tern;
using fuzz::finding;

namespace {

constexpr std::string_view kPeerMark = "\n--peer--\n";
constexpr std::int64_t kQuarterHour = 15 * 60 * 1000;
constexpr int kMaxAttempts = 64;

bool strict() {
  static const bool on = std::getenv("TERN_FUZZ_STRICT") != nullptr;
  return on;
}

// TERN_FUZZ_TRACE=1: what happens to each message, to read a reproduced input.
void trace(const char* format, ...) {
  static const bool on = std::getenv("TERN_FUZZ_TRACE") != nullptr;
  if (!on) return;
  std::va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
  va_end(args);
}

const config::Config& pipeline_config() {
  static const config::Config c = [] {
    // larger than a spool part, smaller than "@@x" can make
    config::Config c = fuzz::base_config(600 * 1024);
    config::Mailbox postmaster;
    postmaster.address = "postmaster@example.test";
    postmaster.maildir = "/nonexistent";
    c.mailboxes.push_back(postmaster);
    return c;
  }();
  return c;
}

// --- the spool: encode/decode as RocksSpool::add_to_batch, in memory -------

#define SAME(field)                                                                       \
  do {                                                                                    \
    if (!(a.field == b.field)) finding("envelope field " #field " changed in the spool"); \
  } while (0)

void expect_same(const queue::Envelope& a, const queue::Envelope& b) {
  SAME(id);
  SAME(message_id);
  SAME(sender);
  SAME(ret);
  SAME(envid);
  SAME(body);
  SAME(smtputf8);
  SAME(arrival_ms);
  SAME(next_attempt_ms);
  SAME(size);
  SAME(client_address);
  SAME(client_helo);
  SAME(listener);
  SAME(auth_user);
  SAME(is_dsn);
  SAME(held);
  SAME(recipients.size());
  for (std::size_t i = 0; i < a.recipients.size(); ++i) {
    SAME(recipients[i].address);
    SAME(recipients[i].local);
    SAME(recipients[i].notify);
    SAME(recipients[i].orcpt_type);
    SAME(recipients[i].orcpt);
    SAME(recipients[i].state);
    SAME(recipients[i].attempts);
    SAME(recipients[i].last_reply);
    SAME(recipients[i].remote_host);
    SAME(recipients[i].delay_notified);
  }
}

#undef SAME

// decode_envelope's contract for a record that is not one (a damaged disk, a
// newer tern): std::runtime_error, which RocksSpool::list turns into an entry
// the administrator sees. A record that decodes encodes again unchanged.
void check_record(std::string_view record) {
  queue::Envelope e;
  try {
    e = queue::decode_envelope(record);
  } catch (const std::runtime_error&) {
    return;
  } catch (const std::exception& ex) {
    finding("decode_envelope threw %s instead of std::runtime_error: %s", typeid(ex).name(),
            ex.what());
  }
  std::string again;
  try {
    again = queue::encode(e);
  } catch (const std::exception& ex) {
    finding("queue::encode threw on a record decode_envelope accepted: %s", ex.what());
  }
  expect_same(e, queue::decode_envelope(again));
}

class EncodingSpool final : public queue::Spool {
 public:
  std::uint64_t next_id() override { return memory.next_id(); }
  bool has_room(std::uint64_t size) override { return memory.has_room(size); }
  // What RocksSpool does on its commit thread.
  void apply(queue::SpoolChange change, queue::CommitCallback done) override {
    for (auto& m : change.add) m.envelope = stored(m.envelope);
    for (auto& e : change.update) e = stored(e);
    for (const auto& m : change.add)
      trace("spool: add %llu %s from <%s>, %zu recipient(s)", (unsigned long long)m.envelope.id,
            util::printable(m.envelope.message_id).c_str(),
            util::printable(m.envelope.sender).c_str(), m.envelope.recipients.size());
    for (const auto& e : change.update)
      trace("spool: update %llu, next attempt %lld", (unsigned long long)e.id,
            (long long)e.next_attempt_ms);
    for (auto id : change.remove) trace("spool: remove %llu", (unsigned long long)id);
    memory.apply(std::move(change), std::move(done));
  }
  queue::CommitResult store_part(std::uint64_t id, std::uint32_t seq,
                                 std::string_view bytes) override {
    return memory.store_part(id, seq, bytes);
  }
  std::vector<queue::Envelope> list() override { return memory.list(); }
  std::optional<queue::Envelope> find(std::uint64_t id) override { return memory.find(id); }
  std::optional<std::string> content(std::uint64_t id) override { return memory.content(id); }
  void close() override {}

  queue::MemorySpool memory;

 private:
  queue::Envelope stored(const queue::Envelope& e) {
    std::string record;
    try {
      record = queue::encode(e);
    } catch (const std::exception& ex) {
      finding("queue::encode threw on the spool's commit thread: %s", ex.what());
    }
    queue::Envelope back;
    try {
      back = queue::decode_envelope(record);
    } catch (const std::exception& ex) {
      finding("decode_envelope refuses what encode wrote: %s", ex.what());
    }
    expect_same(e, back);
    if (queue::encode(back) != record) finding("encode(decode(record)) != record");
    return back;
  }
};

// --- the client side: a Session as server/connection.cpp drives it --------

// Parts of messages that will never be committed, dropped as
// Connection::discard_abandoned does.
void discard_abandoned(server::Session& session, EncodingSpool& spool) {
  auto ids = session.take_abandoned();
  if (ids.empty()) return;
  queue::SpoolChange change;
  change.discard = std::move(ids);
  spool.apply(std::move(change), [](queue::CommitResult) {});
}

// Connection::converse without the socket: pieces of chunk|1 octets in (a
// thousandth of the whole when larger, so a large message costs little time),
// commits and parts to the spool at once, STARTTLS and AUTH answered in place.
void converse(server::Session& session, std::string_view bytes, std::uint8_t chunk, bool fail_once,
              EncodingSpool& spool) {
  smtp::InputBuffer in;
  std::size_t pos = 0;
  bool open = true;
  while (open && pos < bytes.size()) {
    std::size_t n =
        std::min(std::max<std::size_t>(chunk | 1, bytes.size() / 1024), bytes.size() - pos);
    std::memcpy(in.prepare(n), bytes.data() + pos, n);
    in.commit(n);
    pos += n;
    for (int guard = 0; open && guard < 100000; ++guard) {
      server::Step step = session.process(in);
      for (;;) {
        if (step.reply) trace("session: %s", util::printable(step.reply->summary()).c_str());
        if (step.action == server::Action::kCommit) {
          if (std::exchange(fail_once, false)) spool.memory.fail_next = queue::SpoolStatus::kError;
          queue::CommitResult result;
          spool.commit(session.take_message(), [&](queue::CommitResult r) { result = r; });
          step = session.committed(result);
        } else if (step.action == server::Action::kStore) {
          auto part = session.take_part();
          if (part.bytes.empty()) finding("the session stores an empty part");
          step = session.part_stored(spool.store_part(part.id, part.seq, part.bytes));
        } else if (step.action == server::Action::kVerifyCredentials) {
          step = session.credentials_verified(std::nullopt);
        } else if (step.action == server::Action::kCheckSender) {
          session.take_sender_check();
          step = session.sender_checked(auth::SenderAuthVerdict{});
        } else {
          break;
        }
      }
      discard_abandoned(session, spool);
      if (step.action == server::Action::kNeedInput) break;
      if (step.action == server::Action::kClose) open = false;
      if (step.action == server::Action::kStartTls) {
        in.clear();
        session.tls_established("TLSv1.3 with cipher TLS_AES_128_GCM_SHA256");
      }
    }
  }
}

void run_session(std::uint8_t flags, std::uint8_t chunk, std::string_view bytes,
                 EncodingSpool& spool) {
  const auto& config = pipeline_config();
  config::Listener listener = config.listeners.front();
  listener.auth = (flags & 1) ? config::AuthMode::kOptional : config::AuthMode::kNone;
  listener.allow_plaintext_auth = flags & 2;
  listener.require_tls = flags & 4;
  spool.memory.room = !(flags & 8);
  server::Authenticator authenticator(config);
  server::SessionEnv env;
  env.config = &config;
  env.listener = &listener;
  env.spool = &spool;
  env.authenticator = &authenticator;
  env.client.address = (flags & 16) ? "198.51.100.9" : "192.0.2.1";
  env.client.ip = *util::IpAddress::parse(env.client.address);
  env.tls_available = flags & 32;
  env.tls_active = flags & 128;
  server::Session session(env);
  try {
    converse(session, fuzz::expand(bytes, 2048, 1 << 20), chunk, flags & 64, spool);
  } catch (const std::exception& e) {
    // Connection::run catches it and ends this connection with 421.
    if (strict()) finding("the session threw (its connection ends): %s", e.what());
  }
  session.connection_closed();
  discard_abandoned(session, spool);
  if (spool.memory.stored_parts() != 0)
    finding("parts of a message that was never committed stay in the spool");
}

// --- the next hop ----------------------------------------------------------

struct Record {
  std::uint8_t op = 0, adv = 0;
  std::string_view wire;
};

class Records {
 public:
  explicit Records(std::string_view data) : data_(data) {}
  std::optional<Record> next() {
    if (data_.size() < 4) return std::nullopt;
    Record r{std::uint8_t(data_[0]), std::uint8_t(data_[1]), {}};
    std::size_t len = (std::uint8_t(data_[2]) << 8) | std::uint8_t(data_[3]);
    data_.remove_prefix(4);
    r.wire = data_.substr(0, len);
    data_.remove_prefix(r.wire.size());
    return r;
  }

 private:
  std::string_view data_;
};

delivery::Capabilities peer_capabilities(std::uint8_t p) {
  delivery::Capabilities c;
  c.esmtp = true;
  c.dsn = p & 1;
  c.smtputf8 = p & 2;
  c.eightbitmime = p & 4;
  c.binarymime = p & 8;
  c.chunking = p & 16;
  if (p & 32) c.size_limit = 1000;
  c.pipelining = p & 64;
  return c;
}

// What the delivery client makes of the next hop's bytes for one recipient.
delivery::Outcome outcome_of(const Record& r, const queue::Recipient& rcpt) {
  std::string host =
      rcpt.local ? ((r.op & 8) ? "lmtp 127.0.0.1:24" : "maildir") : "mx.example.net[192.0.2.25]:25";
  smtp::InputBuffer in;
  std::memcpy(in.prepare(r.wire.size() + 1), r.wire.data(), r.wire.size());
  in.commit(r.wire.size());
  smtp::ReplyParser parser;
  smtp::Reply reply;
  std::string error;
  auto status = parser.parse(in, reply, error);
  if (status != smtp::ReplyParser::Status::kReply) {
    delivery::ReadResult read;
    read.error =
        status == smtp::ReplyParser::Status::kError ? "not SMTP: " + error : "connection closed";
    return delivery::Outcome::temporary_failure(
        delivery::Scope::kConnection, delivery::lost_reply(read, host, "the reply to RCPT TO"),
        host);
  }
  using delivery::Status;
  Status s = (r.op & 3) == 1             ? Status::kDelivered
             : (r.op & 3) == 2           ? Status::kTemporary
             : (r.op & 3) == 3           ? Status::kPermanent
             : reply.positive()          ? Status::kDelivered
             : reply.permanent_failure() ? Status::kPermanent
                                         : Status::kTemporary;
  delivery::Outcome o{s, delivery::Scope::kRecipient, std::move(reply), host, false, true};
  o.dsn_relayed = s == Status::kDelivered && !rcpt.local && (r.op & 4);
  return o;
}

// A notice as RFC 3464 lays it out: From <> to the original sender, three
// parts between the boundary lines and the close delimiter last; only CR LF
// line ends, the returned message included (SPEC §4); what tern writes itself
// has lines of at most 998 octets.
void check_dsn(const queue::NewMessage& m, const queue::Envelope& original) {
  const auto& e = m.envelope;
  if (original.sender.empty()) finding("a DSN for a message from <> (RFC 3461 §6.2)");
  if (!e.is_dsn || !e.sender.empty() || e.recipients.size() != 1 ||
      e.recipients[0].address != original.sender)
    finding("DSN envelope is not from <> to the original sender");
  const std::string& c = m.content;
  if (e.size != c.size()) finding("DSN size differs from its content");
  auto at = c.find("=_tern-dsn-");
  if (at == std::string::npos || c.size() < at + 47) finding("DSN without its boundary");
  const std::string delimiter = "\r\n--" + c.substr(at, 47);
  std::vector<std::size_t> found;
  for (auto p = c.find(delimiter); p != std::string::npos; p = c.find(delimiter, p + 1))
    found.push_back(p);
  if (found.size() != 4 || c.compare(found[3], std::string::npos, delimiter + "--\r\n") != 0)
    finding("DSN has %zu boundary lines instead of 3 and the close delimiter last", found.size());
  std::string_view written(c.data(), found[2]);
  auto bare = fuzz::bare_line_end(c);
  if (bare != std::string_view::npos)
    finding("bare %s in a DSN, %s", c[bare] == '\r' ? "CR" : "LF",
            bare < written.size() ? "in the text tern wrote" : "in the returned message");
  if (written.find('\0') != std::string_view::npos) finding("NUL in the DSN text");
  for (std::size_t start = 0, end; (end = written.find("\r\n", start)) != std::string_view::npos;
       start = end + 2)
    if (end - start > 998) finding("DSN line longer than 998 octets (RFC 5322 §2.1.1)");
}

// The lines the client would send for this attempt.
void check_commands(const queue::Envelope& env, std::string_view content,
                    const delivery::Capabilities& caps, std::uint8_t p, bool first_time) {
  fuzz::check_command_line("MAIL FROM", delivery::mail_command(env, caps, content.size()));
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < env.recipients.size(); ++i) {
    if (env.recipients[i].done()) continue;
    pending.push_back(i);
    fuzz::check_command_line("RCPT TO", delivery::rcpt_command(env.recipients[i], caps));
  }
  auto refusal = delivery::refusal_before_mail(env, pending, content, caps, "mx.example.net");
  if (!refusal && first_time) fuzz::check_data_transfer(content, p >> 4);
}

// The scheduler's side: attempts on whatever is queued, as the records say.
struct Delivery {
  Delivery(const config::Config& config, EncodingSpool& s, std::string_view peer)
      : spool(s), recorder(config, s), records(peer.substr(1)), p(std::uint8_t(peer[0])) {}
  bool attempt(const Record& first);

  EncodingSpool& spool;
  queue::AttemptRecorder recorder;
  Records records;
  std::uint8_t p;
  std::int64_t now = 0;
  std::set<std::uint64_t> sent;  // messages whose content went out once (it never changes)
};

// One attempt as Scheduler::attempt makes it; false when no message is left.
bool Delivery::attempt(const Record& first) {
  std::vector<std::uint64_t> queued;
  for (const auto& e : spool.list()) {
    if (!e.held.empty()) continue;  // waits for the administrator
    for (const auto& r : e.recipients)
      if (!r.done()) {
        queued.push_back(e.id);
        break;
      }
  }
  if (queued.empty()) return false;
  std::uint64_t id = queued[(first.op >> 5) % queued.size()];
  auto env = *spool.find(id);
  auto content = *spool.content(id);
  now = std::max(now + first.adv * kQuarterHour, env.next_attempt_ms);
  const queue::Envelope before = env;
  queue::AttemptResult result;
  try {
    if (recorder.expired(env, now)) {
      result = recorder.fail_pending(env, content,
                                     smtp::Reply(550, "5.4.7", "Delivery time expired"), now);
    } else if (first.op & 16) {
      result = recorder.fail_pending(
          env, content, smtp::Reply(550, "5.0.0", "Bounced by the administrator"), now);
    } else {
      check_commands(env, content, peer_capabilities(p), p, sent.insert(id).second);
      std::vector<delivery::RecipientOutcome> outcomes;
      Record r = first;
      for (std::size_t i = 0; i < env.recipients.size(); ++i) {
        if (env.recipients[i].done()) continue;
        if (!outcomes.empty())
          if (auto more = records.next()) r = *more;
        outcomes.push_back({i, outcome_of(r, env.recipients[i])});
      }
      for (const auto& o : outcomes)
        trace("attempt %llu: <%s> %s", (unsigned long long)id,
              util::printable(env.recipients[o.index].address).c_str(),
              util::printable(o.outcome.reply.summary()).c_str());
      // As the scheduler records groups that end early (Maildir, LMTP, a
      // domain): the first half written on its own with the whole envelope.
      if ((first.op & 8) && outcomes.size() > 1) {
        std::vector<delivery::RecipientOutcome> early(outcomes.begin(),
                                                      outcomes.begin() + outcomes.size() / 2);
        outcomes.erase(outcomes.begin(), outcomes.begin() + outcomes.size() / 2);
        auto group = recorder.record_group(env, content, early, now);
        for (const auto& m : group.change.add) check_dsn(m, before);
        group.change.update.push_back(env);
        spool.apply(std::move(group.change), [](queue::CommitResult) {});
      }
      result = recorder.record(env, content, outcomes, now);
    }
  } catch (const std::exception& e) {
    // Scheduler::attempt holds the message with the reason.
    if (strict()) finding("the attempt threw (the message is held): %s", e.what());
    queue::Envelope held = before;
    held.held = "held: processing failed inside tern (" + util::printable(e.what()) + ")";
    queue::SpoolChange change;
    change.update.push_back(std::move(held));
    spool.apply(std::move(change), [](queue::CommitResult) {});
    return true;
  }
  for (const auto& m : result.change.add) check_dsn(m, before);
  if (result.finished != result.change.update.empty())
    finding("an attempt both finishes the message and keeps it");
  queue::CommitResult written;
  spool.apply(std::move(result.change), [&](queue::CommitResult r) { written = r; });
  return true;
}

int run(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.starts_with('{')) {
    check_record(input);
    return 0;
  }
  if (size < 2) return 0;
  std::uint8_t flags = data[0], chunk = data[1];
  input.remove_prefix(2);
  auto mark = input.find(kPeerMark);
  std::string_view client = input.substr(0, mark);
  std::string_view peer =
      mark == std::string_view::npos ? std::string_view() : input.substr(mark + kPeerMark.size());

  EncodingSpool spool;
  run_session(flags, chunk, client, spool);
  if (peer.empty()) return 0;

  config::Config config = pipeline_config();
  if (peer[0] & 128) config.queue.delay_notice_ms = 0;  // every deferral sends its notice
  Delivery delivery(config, spool, peer);
  for (int i = 0; i < kMaxAttempts; ++i) {
    auto first = delivery.records.next();
    if (!first || !delivery.attempt(*first)) break;
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    return run(data, size);
  } catch (const fuzz::IgnoredFinding&) {
    return 0;
  }
}
