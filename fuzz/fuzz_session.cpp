// libFuzzer target: the whole inbound session state machine (server/session*)
// fed arbitrary bytes the way server/connection.cpp feeds it — in pieces, with
// commits to a memory spool, STARTTLS and AUTH answered in place. Checks that
// nothing crashes or leaks and that every reply is well formed: a code from
// 200 to 599 and lines without CR or LF (a reply must never let input inject
// protocol lines).
#include <cstdint>
#include <cstring>

#include "config/config.h"
#include "fuzz_config.h"
#include "queue/spool_memory.h"
#include "server/auth.h"
#include "server/session.h"

using namespace tern;

namespace {

const config::Config& fuzz_config() {
  static const config::Config c = fuzz::base_config(65536);
  return c;
}

void check(const smtp::Reply& r) {
  if (r.code < 200 || r.code > 599 || r.lines.empty()) __builtin_trap();
  for (const auto& line : r.lines)
    if (line.find_first_of("\r\n") != std::string::npos) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto& config = fuzz_config();
  config::Listener listener = config.listeners.front();
  std::uint8_t flags = data[0], chunk = static_cast<std::uint8_t>(data[1] | 1);
  listener.auth = (flags & 1) ? config::AuthMode::kOptional : config::AuthMode::kNone;
  listener.allow_plaintext_auth = flags & 2;
  listener.require_tls = flags & 4;
  queue::MemorySpool spool;
  spool.room = !(flags & 8);
  server::Authenticator authenticator(config);
  server::SessionEnv env;
  env.config = &config;
  env.listener = &listener;
  env.spool = &spool;
  env.authenticator = &authenticator;
  env.client.address = (flags & 16) ? "198.51.100.9" : "192.0.2.1";
  env.client.ip = *util::IpAddress::parse(env.client.address);
  env.tls_available = flags & 32;
  server::Session session(env);
  check(session.greeting());

  smtp::InputBuffer in;
  std::size_t pos = 2;
  bool open = true;
  while (open && pos < size) {
    std::size_t n = std::min<std::size_t>(chunk, size - pos);  // arrives in pieces
    std::memcpy(in.prepare(n), data + pos, n);
    in.commit(n);
    pos += n;
    for (int guard = 0; open && guard < 100000; ++guard) {
      server::Step step = session.process(in);
      for (;;) {
        if (step.reply) check(*step.reply);
        if (step.action == server::Action::kCommit) {
          queue::CommitResult result;
          if (flags & 64) result.status = queue::SpoolStatus::kNoSpace;
          auto message = session.take_message();
          if (message.envelope.recipients.empty())
            __builtin_trap();  // no message without recipients
          step = session.committed(result);
        } else if (step.action == server::Action::kStore) {
          auto part = session.take_part();
          if (part.bytes.empty()) __builtin_trap();  // a part is never empty
          queue::CommitResult stored;
          if (flags & 64) stored.status = queue::SpoolStatus::kNoSpace;
          step = session.part_stored(stored);
        } else if (step.action == server::Action::kVerifyCredentials) {
          step = session.credentials_verified(std::nullopt);
        } else if (step.action == server::Action::kCheckSender) {
          session.take_sender_check();
          step = session.sender_checked(auth::SenderAuthVerdict{});
        } else {
          break;
        }
      }
      if (step.action == server::Action::kNeedInput) break;
      if (step.action == server::Action::kClose) open = false;
      if (step.action == server::Action::kStartTls) {
        in.clear();
        session.tls_established("TLSv1.3 with cipher TLS_AES_128_GCM_SHA256");
      }
    }
  }
  return 0;
}
