// Drives a server::Session without sockets, the way server/connection.cpp
// does: bytes in, reply text out. Commits go to a MemorySpool at once and
// password checks run inline, so a test reads like the SMTP dialogue it checks.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "queue/spool_memory.h"
#include "server/auth.h"
#include "server/session.h"
#include "smtp/input_buffer.h"

namespace tern::test {

// A configuration with example.test accepted, kate@ and postmaster@ as
// mailboxes, and extra TOML appended (listener keys go into `listener`).
std::string test_config_text(std::string_view listener_extra = "", std::string_view extra = "");

class SessionHarness {
 public:
  explicit SessionHarness(std::string_view listener_extra = "", std::string_view extra = "",
                          std::string client_ip = "192.0.2.10");

  // Feeds bytes; returns every reply produced until the session needs more
  // input or closes, as wire text.
  std::string feed(std::string_view bytes);
  // Feeds one command line (CR LF added) and returns its reply text.
  std::string say(std::string_view line) { return feed(std::string(line) + "\r\n"); }
  // EHLO, MAIL, RCPT, DATA, content, "." — returns the reply to the final dot.
  std::string send_message(std::string_view from, std::string_view to, std::string_view content);

  bool closed() const { return closed_; }
  // How many times the session handed back stored parts to discard.
  int abandoned() const { return abandoned_; }
  bool starttls_requested() const { return starttls_; }
  server::Session& session() { return *session_; }
  queue::MemorySpool& spool() { return spool_; }
  const config::Config& config() const { return config_; }
  void set_tls_available(bool available);
  // Sender authentication: signing keys, checks on, the verdict the checks
  // give, the DKIM key records they find; what the last check was given.
  void set_dkim_keys(std::shared_ptr<const server::DkimKeyring> keys);
  void set_verify_senders(bool on);
  auth::SenderAuthVerdict verdict;
  std::function<dns::TxtResult(const std::string&)> dkim_keys_txt = [](const std::string& name) {
    return dns::TxtResult::failure(dns::DnsError::kNxDomain, name);
  };
  std::optional<auth::SenderAuthInput> last_check;

 private:
  void rebuild();

  config::Config config_;
  queue::MemorySpool spool_;
  server::Authenticator authenticator_;
  server::SessionEnv env_;
  std::unique_ptr<server::Session> session_;
  smtp::InputBuffer in_;
  bool closed_ = false;
  int abandoned_ = 0;
  bool starttls_ = false;
};

}  // namespace tern::test
