// libFuzzer target: what a hostile next hop can send to tern's SMTP client.
// Its bytes are read reply after reply exactly as ClientConnection::read_reply
// reads them (smtp::ReplyParser over an InputBuffer, 4096-octet reads), the
// first replies are taken as EHLO replies too (delivery::Capabilities), and
// the wire layer builds what the client would answer (smtp_client_wire.h).
//
// Input:  R F peer-bytes
//   R  a read brings at most (R + 1) × 64 octets, or 1/1024 of the peer's
//      bytes when that is more, never more than the 4096 the client asks for;
//      F picks the envelope the commands are built for: 1 SMTPUTF8,
//      2 BODY=8BITMIME, 4 BINARYMIME, 8 RET=FULL, 16 ENVID, 32 NOTIFY and
//      ORCPT, 64 a content larger than SIZE 1000;
//   peer-bytes: what the next hop sends; "@@x" N L P (P being L octets)
//      stands for P repeated N × 2048 times, 512 KB at most (endless
//      continuation lines, long lines: more than a reply may hold).
//   After a read that ends the connection ("not SMTP") the rest of the bytes
//   go to a new connection.
//
// Findings (abort): a reply whose code is outside 200–599, with no line, more
// than 100 lines or a line longer than 4096 octets, with an LF inside a line,
// or an enhanced code that is not RFC 3463's class.subject.detail of the
// reply's class; heap growth while reading one reply beyond a fixed bound
// (memory per connection, SPEC §4) whatever the peer sends; a made-up reply
// (lost_reply) that is not one printable line; a MAIL or RCPT line with CR,
// LF or NUL inside; capabilities that keep more than twice the size of the
// reply they came from (a hostile AUTH list).
#include <sanitizer/allocator_interface.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "checks.h"
#include "delivery/smtp_client.h"
#include "delivery/smtp_client_wire.h"
#include "smtp/input_buffer.h"
#include "smtp/reply_parser.h"

using namespace tern;
using fuzz::finding;

namespace {

constexpr std::size_t kReadSize = 4096;                  // as client_connection.cpp
constexpr std::size_t kMaxLines = 100, kMaxLine = 4096;  // ReplyParser's defaults
// Replies taken as EHLO replies and answered; the rest are only read (a
// client reads a few dozen replies on one connection).
constexpr std::size_t kAnswered = 32;
// A reply of kMaxLines lines of kMaxLine octets, the buffer and some slack.
constexpr std::size_t kReadBound = kMaxLines * (kMaxLine + 64) + 4 * kReadSize + 64 * 1024;

// Heap in use, counted by the sanitizer's hooks while `counting` is set.
struct Heap {
  bool counting = false;
  std::int64_t live = 0, peak = 0;
  void start() {
    live = peak = 0;
    counting = true;
  }
  std::int64_t stop() {
    counting = false;
    return peak;
  }
} heap;

void on_malloc(const volatile void*, std::size_t size) {
  if (!heap.counting) return;
  heap.live += static_cast<std::int64_t>(size);
  if (heap.live > heap.peak) heap.peak = heap.live;
}

void on_free(const volatile void* p) {
  if (heap.counting && p)
    heap.live -=
        static_cast<std::int64_t>(__sanitizer_get_allocated_size(const_cast<const void*>(p)));
}

// The peer's side of one connection: what is left to read.
struct Peer {
  std::string_view bytes;
  std::size_t read_max = kReadSize;
};

// ClientConnection::read_reply without the socket and the deadline.
delivery::ReadResult read_reply(smtp::InputBuffer& in, smtp::ReplyParser& parser, Peer& peer) {
  delivery::ReadResult result;
  for (;;) {
    smtp::Reply reply;
    std::string error;
    auto status = parser.parse(in, reply, error);
    if (status == smtp::ReplyParser::Status::kReply) {
      result.reply = std::move(reply);
      return result;
    }
    if (status == smtp::ReplyParser::Status::kError) {
      result.error = "not SMTP: " + error;
      return result;
    }
    char* p = in.prepare(kReadSize);
    std::size_t n = std::min({in.writable(), peer.read_max, peer.bytes.size()});
    if (n == 0) {
      result.error = "connection closed";
      return result;
    }
    std::memcpy(p, peer.bytes.data(), n);
    in.commit(n);
    peer.bytes.remove_prefix(n);
  }
}

bool is_digits(std::string_view s) {
  return !s.empty() && s.size() <= 3 && s.find_first_not_of("0123456789") == std::string_view::npos;
}

void check_reply(const smtp::Reply& r) {
  if (r.code < 200 || r.code > 599) finding("reply code %d outside 200-599", r.code);
  if (r.lines.empty() || r.lines.size() > kMaxLines)
    finding("reply with %zu lines (1 to %zu)", r.lines.size(), kMaxLines);
  for (const auto& line : r.lines) {
    if (line.size() > kMaxLine) finding("reply line of %zu octets", line.size());
    if (line.find('\n') != std::string::npos) finding("LF inside a reply line");
  }
  if (r.enhanced.empty()) return;
  std::string_view e = r.enhanced;
  auto dot1 = e.find('.'), dot2 = e.rfind('.');
  if (e.size() < 5 || e[0] != char('0' + r.code / 100) || dot1 != 1 || dot2 == dot1 ||
      !is_digits(e.substr(2, dot2 - 2)) || !is_digits(e.substr(dot2 + 1)))
    finding("enhanced code \"%s\" is not class.subject.detail of a %d reply", r.enhanced.c_str(),
            r.code);
}

// A reply tern makes up is shown in logs, `tern queue show` and DSNs: one line
// of text without control bytes (TAB aside, as util::printable keeps it),
// bounded whatever the peer sent.
void check_made_up(const smtp::Reply& r) {
  if (r.lines.size() != 1) finding("a made-up reply has %zu lines", r.lines.size());
  for (unsigned char c : r.lines.front())
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      finding("a made-up reply carries control byte 0x%02x", c);
  if (r.lines.front().size() > 1024)
    finding("a made-up reply of %zu octets", r.lines.front().size());
}

queue::Envelope envelope_for(std::uint8_t f) {
  queue::Envelope e;
  e.id = 1;
  e.sender = (f & 1) ? "jöran@example.test" : "a@example.test";
  e.smtputf8 = f & 1;
  e.body = (f & 4)   ? smtp::BodyType::kBinaryMime
           : (f & 2) ? smtp::BodyType::k8BitMime
                     : smtp::BodyType::kUnspecified;
  e.ret = (f & 8) ? smtp::DsnRet::kFull : smtp::DsnRet::kUnspecified;
  if (f & 16) e.envid = "id+1=2 \x01";
  queue::Recipient r;
  r.address = (f & 1) ? "ñ@example.net" : "b@example.net";
  if (f & 32) {
    r.notify = smtp::notify::kSuccess | smtp::notify::kFailure;
    r.orcpt_type = "rfc822";
    r.orcpt = "b+x=y@example.net";
  }
  e.recipients.push_back(r);
  return e;
}

// What the client would do next with what this peer announced.
void answer(const smtp::Reply& reply, std::uint8_t f) {
  heap.start();
  auto caps = delivery::Capabilities::parse(reply);
  heap.stop();
  std::int64_t kept = heap.live;  // what caps holds
  std::size_t size = 0;
  for (const auto& l : reply.lines) size += l.size() + 8;
  if (kept > static_cast<std::int64_t>(2 * size + 4096))
    finding("capabilities of a %zu-octet reply keep %lld octets", size,
            static_cast<long long>(kept));
  auto env = envelope_for(f);
  std::string content((f & 64) ? 2000 : 10, 'x');
  fuzz::check_command_line("MAIL FROM", delivery::mail_command(env, caps, content.size()));
  fuzz::check_command_line("RCPT TO", delivery::rcpt_command(env.recipients[0], caps));
  if (auto refusal = delivery::refusal_before_mail(env, {0}, content, caps, "mx.example.net"))
    check_made_up(*refusal);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::string stream = fuzz::expand(
      std::string_view(reinterpret_cast<const char*>(data) + 2, size - 2), 2048, 512 * 1024);
  std::size_t read = std::max<std::size_t>((data[0] + 1) * 64, stream.size() / 1024);
  Peer peer{stream, std::min(read, kReadSize)};
  std::uint8_t f = data[1];
  std::size_t replies = 0;
  try {
    while (!peer.bytes.empty()) {  // one connection after another
      smtp::InputBuffer in;
      smtp::ReplyParser parser;
      for (;;) {
        heap.start();
        auto read = read_reply(in, parser, peer);
        std::int64_t grown = heap.stop();
        if (grown > static_cast<std::int64_t>(kReadBound))
          finding("reading one reply took %lld octets of heap (bound %zu)",
                  static_cast<long long>(grown), kReadBound);
        if (!read.reply) {
          check_made_up(
              delivery::lost_reply(read, "mx.example.net[192.0.2.25]:25", "the reply to RCPT TO"));
          break;
        }
        check_reply(*read.reply);
        if (++replies <= kAnswered) answer(*read.reply, f);
      }
    }
  } catch (const fuzz::IgnoredFinding&) {
  }
  return 0;
}
