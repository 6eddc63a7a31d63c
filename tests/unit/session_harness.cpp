#include "session_harness.h"

#include <cstring>

namespace tern::test {

std::string test_config_text(std::string_view listener_extra, std::string_view extra) {
  std::string text = R"(hostname = "mail.example.test"
[domains]
accepted = ["example.test"]
[[mailbox]]
address = "kate@example.test"
maildir = "mail/kate"
aliases = ["katherine@example.test"]
[[mailbox]]
address = "postmaster@example.test"
maildir = "mail/postmaster"
[relay]
networks = ["198.51.100.0/24"]
)";
  text += extra;
  text += "\n[[listener]]\nname = \"test\"\naddress = \"127.0.0.1:0\"\n";
  text += listener_extra;
  text += "\n";
  return text;
}

SessionHarness::SessionHarness(std::string_view listener_extra, std::string_view extra,
                               std::string client_ip)
    : config_(config::parse(test_config_text(listener_extra, extra), "/tmp/tern-test.toml")),
      authenticator_(config_) {
  env_.config = &config_;
  env_.listener = &config_.listeners.front();
  env_.spool = &spool_;
  env_.authenticator = authenticator_.has_users() ? &authenticator_ : nullptr;
  env_.client.address = client_ip;
  env_.client.ip = util::IpAddress::parse(client_ip).value();
  rebuild();
}

void SessionHarness::rebuild() {
  session_ = std::make_unique<server::Session>(env_);
}

void SessionHarness::set_dkim_keys(std::shared_ptr<const server::DkimKeyring> keys) {
  env_.dkim_keys = std::move(keys);
  rebuild();
}

void SessionHarness::set_verify_senders(bool on) {
  env_.verify_senders = on;
  rebuild();
}

void SessionHarness::set_tls_available(bool available) {
  env_.tls_available = available;
  rebuild();
}

std::string SessionHarness::feed(std::string_view bytes) {
  char* p = in_.prepare(bytes.size() + 1);
  std::memcpy(p, bytes.data(), bytes.size());
  in_.commit(bytes.size());
  std::string out;
  while (!closed_) {
    server::Step step = session_->process(in_);
    for (;;) {
      if (step.reply) step.reply->append_wire(out);
      if (step.action == server::Action::kCommit) {
        queue::CommitResult result;
        spool_.commit(session_->take_message(), [&](queue::CommitResult r) { result = r; });
        step = session_->committed(result);
      } else if (step.action == server::Action::kStore) {
        auto part = session_->take_part();
        step = session_->part_stored(spool_.store_part(part.id, part.seq, part.bytes));
      } else if (step.action == server::Action::kVerifyCredentials) {
        step = session_->credentials_verified(session_->verify_credentials());
      } else if (step.action == server::Action::kCheckSender) {
        server::SenderCheck check = session_->take_sender_check();
        if (check.dkim) check.input.dkim = check.dkim->finish_with(dkim_keys_txt);
        last_check = check.input;
        step = session_->sender_checked(verdict);
      } else {
        break;
      }
    }
    if (!session_->take_abandoned().empty()) ++abandoned_;
    if (step.action == server::Action::kNeedInput) break;
    if (step.action == server::Action::kClose) closed_ = true;
    if (step.action == server::Action::kStartTls) {
      starttls_ = true;
      in_.clear();
      session_->tls_established();
      break;
    }
  }
  return out;
}

std::string SessionHarness::send_message(std::string_view from, std::string_view to,
                                         std::string_view content) {
  say("EHLO client.example");
  say("MAIL FROM:<" + std::string(from) + ">");
  say("RCPT TO:<" + std::string(to) + ">");
  say("DATA");
  return feed(std::string(content) + "\r\n.\r\n");
}

}  // namespace tern::test
