// `tern check ADDRESS`: the seed's whole procedure, automated (SPEC §1) — MX
// lookup, connect in preference order (the next host when one cannot be
// reached), banner, EHLO (HELO if refused), optional STARTTLS with the
// certificate shown and optional AUTH, MAIL FROM, RCPT TO … NOTIFY=success,failure,
// DATA with a test message (or --no-data), QUIT. Every step has a timeout.
// Exit 0 only when the test message was queued (or RCPT accepted with --no-data).
//
// A password is sent only over TLS whose certificate verified (a trusted
// chain naming the host): --auth turns STARTTLS on, and stops before AUTH
// when verification fails. --insecure-auth is the explicit way round that,
// for test servers with self-signed certificates or without TLS.
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "auth/dkim_sign.h"
#include "cli/check_report.h"
#include "cli/check_sender.h"
#include "cli/check_targets.h"
#include "cli/commands.h"
#include "cli/terminal.h"
#include "config/config.h"
#include "delivery/client_connection.h"
#include "delivery/smtp_client.h"
#include "dns/mx_route.h"
#include "dns/resolver_cares.h"
#include "smtp/address.h"
#include "smtp/headers.h"
#include "tls/context.h"
#include "util/base64.h"
#include "util/random.h"
#include "util/text.h"

namespace tern::cli {

namespace {

using smtp::Step;
using Clock = std::chrono::steady_clock;

bool is_ip(const std::string& text) {
  std::error_code ec;
  (void)asio::ip::make_address(text, ec);
  return !ec;
}

class Check {
 public:
  Check(const CheckOptions& o, CheckReport& report) : o_(o), r_(report) {}

  net::awaitable<int> run(asio::any_io_executor ex) {
    auto address = smtp::parse_address(o_.address);
    if (!address || address->domain.empty() || address->local.empty()) {
      r_.verdict(false, "\"" + o_.address +
                            "\" is not an e-mail address: it needs a user and a domain "
                            "(user@domain, e.g. kate@fabrikam.com); the domain tells which "
                            "server to ask");
      co_return 2;
    }
    if (!o_.auth_user.empty()) {
      const char* env = std::getenv("TERN_PASSWORD");
      password_ = env                    ? env
                  : isatty(STDIN_FILENO) ? read_secret("Password for " + o_.auth_user + ": ")
                                         : "";
      if (password_.empty()) {
        r_.verdict(false, "--auth " + o_.auth_user +
                              " needs a password: set TERN_PASSWORD (standard input is not a "
                              "terminal to ask for it)");
        co_return 2;
      }
    }
    r_.set("address", o_.address);
    r_.set("attempts", nlohmann::json::array());
    if (!o_.no_sender_records) co_await report_sender_records(ex, o_, r_);
    auto found = co_await find_targets(ex, o_, r_, *address);
    const auto& targets = found.hosts;
    if (targets.empty()) co_return found.usage_error ? 2 : 1;  // the verdict says why
    std::vector<std::string> failures;  // one per host that could not be used
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const auto& t = targets[i];
      const bool last = i + 1 == targets.size();
      r_.heading("OPEN " + t.label());
      nlohmann::json attempt = {{"host", t.name},
                                {"address", t.endpoint.address().to_string()},
                                {"port", t.endpoint.port()}};
      std::string problem = co_await open(ex, t, last);
      attempt["ok"] = problem.empty();
      if (!problem.empty()) attempt["error"] = problem;
      r_.add("attempts", attempt);
      if (problem.empty()) co_return co_await converse(t);
      failures.push_back(t.label() + " " + problem);
      conn_.reset();
      if (!last) r_.note("Trying the next host: " + targets[i + 1].label());
    }
    if (failures.size() == 1) {
      r_.verdict(false, failures.front());
    } else {
      std::string all;
      for (const auto& f : failures) all += (all.empty() ? "" : "; ") + f;
      std::string what =
          o_.server.empty() ? " mail servers for " + address->domain : " addresses of " + o_.server;
      r_.verdict(false, "none of the " + std::to_string(failures.size()) + what +
                            " took the session: " + all);
    }
    co_return 1;
  }

 private:
  std::chrono::seconds seconds() const { return std::chrono::seconds(o_.timeout_s); }

  // Connects and reads the banner. Returns "" when the session can go on,
  // else what went wrong, for the verdict ("could not be reached: …").
  net::awaitable<std::string> open(asio::any_io_executor ex, const Target& t, bool last) {
    auto started = Clock::now();
    std::string error;
    conn_ = co_await delivery::ClientConnection::connect(ex, t.endpoint, seconds(), error);
    if (!conn_) {
      r_.failure(Step::kConnect,
                 "Could not open connection to the host, on port " +
                     std::to_string(t.endpoint.port()) + ": " + error,
                 since(started), last);
      co_return "could not be reached: " + error;
    }
    r_.note("connected in " + std::to_string(since(started)) + " ms");
    started = Clock::now();
    auto result = co_await conn_->read_reply(seconds());
    if (!result.reply) {
      r_.failure(Step::kGreeting, "no banner: " + result.error, since(started), last);
      if (result.timed_out)
        co_return "sent no banner within " + std::to_string(o_.timeout_s) + " s";
      if (result.error.starts_with("not SMTP"))
        co_return "does not speak SMTP (" + result.error + ")";
      co_return "closed the connection without a banner (" + result.error + ")";
    }
    r_.reply(Step::kGreeting, *result.reply, since(started), last);
    if (!result.reply->positive()) {
      if (result.reply->code != 421) co_await quit();
      co_return "refused the session: " + result.reply->summary();
    }
    co_return "";
  }

  // Reads a reply to step. When none comes, reports it and gives the verdict.
  net::awaitable<std::optional<smtp::Reply>> read(Step step) {
    auto started = Clock::now();
    auto result = co_await conn_->read_reply(seconds());
    if (!result.reply) {
      r_.failure(step, "no reply: " + result.error, since(started));
      r_.verdict(false, "no reply to " + std::string(smtp::step_name(step)) + " from " + host_ +
                            ": " + result.error);
      co_return std::nullopt;
    }
    r_.reply(step, *result.reply, since(started));
    co_return result.reply;
  }

  // Sends a command and reads its reply. shown: what the report prints
  // instead of line (secrets are never shown).
  net::awaitable<std::optional<smtp::Reply>> command(Step step, std::string line,
                                                     std::string shown = {}) {
    r_.sent(shown.empty() ? line : shown);
    bool sent = co_await conn_->send(line + "\r\n", seconds());
    if (!sent) {
      r_.failure(step, "the connection was closed before the command could be sent", 0);
      r_.verdict(false,
                 host_ + " closed the connection before " + std::string(smtp::step_name(step)));
      co_return std::nullopt;
    }
    co_return co_await read(step);
  }

  // QUIT politely; whatever happens is only shown (the verdict is elsewhere).
  net::awaitable<void> quit() {
    r_.sent("QUIT");
    bool sent = co_await conn_->send("QUIT\r\n", seconds());
    if (!sent) {
      r_.note("(the connection is already closed)");
      co_return;
    }
    auto started = Clock::now();
    auto result = co_await conn_->read_reply(seconds());
    if (!result.reply) {
      r_.note("no reply to QUIT: " + result.error);
      co_return;
    }
    r_.reply(Step::kQuit, *result.reply, since(started));
  }

  // A refused step ends the check: QUIT politely (not after a 421: the
  // server has closed), then the verdict.
  net::awaitable<int> fail_at(Step step, const smtp::Reply& reply) {
    if (reply.code != 421) co_await quit();
    r_.verdict(false, host_ + (reply.code / 100 == 4 ? " deferred " : " refused ") +
                          std::string(smtp::step_name(step)) + ": " + reply.summary() +
                          (reply.code / 100 == 4 ? " (temporary: try again later)" : ""));
    co_return 1;
  }

  net::awaitable<std::optional<delivery::Capabilities>> hello() {
    auto reply = co_await command(Step::kEhlo, "EHLO " + o_.helo);
    if (!reply) co_return std::nullopt;
    if (reply->code / 100 == 5 && reply->code != 501) {
      r_.note("the server does not take EHLO: trying HELO (plain SMTP, RFC 821)");
      reply = co_await command(Step::kEhlo, "HELO " + o_.helo);
      if (!reply) co_return std::nullopt;
    }
    if (!reply->positive()) {
      co_await fail_at(Step::kEhlo, *reply);
      co_return std::nullopt;
    }
    auto caps = delivery::Capabilities::parse(*reply);
    nlohmann::json extensions = nlohmann::json::array();
    for (std::size_t i = 1; i < reply->lines.size(); ++i) extensions.push_back(reply->lines[i]);
    r_.set("extensions", extensions);
    co_return caps;
  }

  net::awaitable<bool> start_tls(const Target& t, const delivery::Capabilities& caps) {
    if (!caps.starttls)
      r_.note("the server does not offer STARTTLS in its EHLO reply; trying anyway");
    auto reply = co_await command(Step::kStartTls, "STARTTLS");
    if (!reply) co_return false;
    if (reply->code != 220) {
      co_await fail_at(Step::kStartTls, *reply);
      co_return false;
    }
    auto context = tls::client_context(false);
    // The certificate must name the host as it was asked for: the MX name,
    // or the --server name or address.
    std::string sni;
    if (is_ip(t.name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(context->native_handle()), t.name.c_str());
    } else {
      tls::expect_host(*context, t.name);
      sni = t.name;
    }
    auto started = Clock::now();
    auto error = co_await conn_->start_tls(*context, sni, seconds());
    if (!error.empty()) {
      r_.failure(Step::kStartTls, "TLS negotiation failed: " + error, since(started));
      r_.verdict(false, "TLS negotiation with " + host_ + " failed: " + error);
      co_return false;
    }
    auto cert = tls::peer_certificate(conn_->ssl());
    tls_verified_ = cert.present && cert.verified;
    tls_problem_ = cert.present ? cert.verify_result : "the server sent no certificate";
    std::string protocol = net::tls_description(conn_->ssl());
    r_.note("TLS: " + protocol);
    if (!cert.present) {
      r_.note("certificate: none (the server sent no certificate)");
    } else {
      r_.note("certificate subject: " + cert.subject);
      r_.note("certificate issuer:  " + cert.issuer);
      r_.note("valid from " + cert.not_before + " to " + cert.not_after);
      r_.note(std::string("verification: ") +
              (cert.verified ? "ok (a trusted chain, and it names " + t.name + ")"
                             : "FAILED: " + cert.verify_result +
                                   " (servers that verify certificates will not trust it; "
                                   "most MX-to-MX mail does not verify)"));
    }
    r_.set("tls", {{"protocol", protocol},
                   {"certificate", cert.present},
                   {"subject", cert.subject},
                   {"issuer", cert.issuer},
                   {"not_before", cert.not_before},
                   {"not_after", cert.not_after},
                   {"verified", cert.verified},
                   {"verify_result", cert.verify_result}});
    co_return true;
  }

  net::awaitable<bool> authenticate(const delivery::Capabilities& caps) {
    if (auto why = password_risk()) {
      r_.note("the password was not sent: " + *why);
      r_.set("auth", {{"sent", false}, {"reason", *why}});
      co_await quit();
      r_.verdict(false, "not sending the password of " + o_.auth_user + " to " + host_ + ": " +
                            *why + " (--insecure-auth sends it anyway)");
      co_return false;
    }
    if (caps.auth.empty())
      r_.note("the server does not offer AUTH in its EHLO reply" +
              std::string(conn_->tls() ? "" : " (many offer it only after STARTTLS)") +
              "; trying anyway");
    bool plain = caps.auth.empty() ||
                 std::find(caps.auth.begin(), caps.auth.end(), "PLAIN") != caps.auth.end();
    std::optional<smtp::Reply> reply;
    if (plain) {
      std::string blob = std::string(1, '\0') + o_.auth_user + '\0' + password_;
      reply = co_await command(Step::kAuth, "AUTH PLAIN " + util::base64_encode(blob),
                               "AUTH PLAIN **** (user " + o_.auth_user + ")");
    } else {
      reply = co_await command(Step::kAuth, "AUTH LOGIN");
      if (reply && reply->code == 334)
        reply =
            co_await command(Step::kAuth, util::base64_encode(o_.auth_user),
                             util::base64_encode(o_.auth_user) + " (user " + o_.auth_user + ")");
      if (reply && reply->code == 334)
        reply = co_await command(Step::kAuth, util::base64_encode(password_), "**** (password)");
    }
    if (!reply) co_return false;
    if (!reply->positive()) {
      co_await fail_at(Step::kAuth, *reply);
      co_return false;
    }
    co_return true;
  }

  // Why sending the password now would expose it, or nullopt when it is
  // safe (or the user said --insecure-auth).
  std::optional<std::string> password_risk() const {
    if (o_.insecure_auth) return std::nullopt;
    if (!conn_->tls()) return "the connection is not encrypted (no TLS)";
    if (!tls_verified_)
      return "the TLS certificate failed verification (" + tls_problem_ +
             "), so the server may not be who it claims to be";
    return std::nullopt;
  }

  std::string test_message() const {
    std::string headers =
        "From: <" + o_.from + ">\r\nTo: <" + o_.address +
        ">\r\nSubject: Test from tern check\r\nDate: " + smtp::rfc5322_date_now() +
        "\r\nMessage-ID: <" + util::random_uuid() + "@" + o_.helo + ">\r\n";
    std::string body = "This is a test message sent by tern check to test SMTP communication.\r\n";
    if (!o_.dkim_key) return headers + "\r\n" + body;
    // --dkim: signed as tern serve signs (RFC 6376, relaxed/relaxed) for the sender's domain.
    auth::DkimSigner signer(o_.dkim_key, util::to_lower(o_.from.substr(o_.from.rfind('@') + 1)),
                            o_.dkim_selector,
                            std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
    signer.headers(headers);
    signer.body(body);
    return signer.finish() + headers + "\r\n" + body;
  }

  net::awaitable<int> converse(const Target& t) {
    host_ = t.label();
    r_.set("host", t.name);
    r_.set("host_address", t.endpoint.address().to_string());
    r_.set("port", t.endpoint.port());
    auto caps = co_await hello();
    if (!caps) co_return 1;
    bool tls_for_password = !o_.auth_user.empty() && !o_.insecure_auth && !o_.starttls;
    if (tls_for_password)
      r_.note("--auth: STARTTLS first, so that the password is never sent in clear text");
    if (o_.starttls || tls_for_password) {
      bool secured = co_await start_tls(t, *caps);
      if (!secured) co_return 1;
      r_.note("TLS is on: EHLO again, as RFC 3207 requires");
      caps = co_await hello();
      if (!caps) co_return 1;
    }
    if (!o_.auth_user.empty()) {
      bool authenticated = co_await authenticate(*caps);
      if (!authenticated) co_return 1;
    }
    auto reply = co_await command(Step::kMail, "MAIL FROM:<" + o_.from + ">");
    if (!reply) co_return 1;
    if (!reply->positive()) co_return co_await fail_at(Step::kMail, *reply);
    std::string rcpt = "RCPT TO:<" + o_.address + ">";
    if (caps->dsn) rcpt += " NOTIFY=success,failure";
    reply = co_await command(Step::kRcpt, rcpt);
    if (!reply) co_return 1;
    if (!reply->positive()) co_return co_await fail_at(Step::kRcpt, *reply);
    if (o_.no_data) {
      co_await quit();
      r_.verdict(true, host_ + " accepts mail for " + o_.address +
                           " (stopped before DATA: --no-data; no message was sent)");
      co_return 0;
    }
    reply = co_await command(Step::kData, "DATA");
    if (!reply) co_return 1;
    if (reply->code != 354) co_return co_await fail_at(Step::kData, *reply);
    std::string message = test_message();
    r_.sent_message(message);
    bool sent = co_await conn_->send(message + ".\r\n", seconds());
    if (!sent) {
      r_.failure(Step::kMessage, "the connection was closed while the message was sent", 0);
      r_.verdict(false, host_ + " closed the connection while the message was sent");
      co_return 1;
    }
    reply = co_await read(Step::kMessage);
    if (!reply) co_return 1;
    if (!reply->positive()) co_return co_await fail_at(Step::kMessage, *reply);
    co_await quit();
    r_.verdict(true, "the test message was queued by " + host_ + ": " + reply->summary());
    co_return 0;
  }

  CheckOptions o_;
  CheckReport& r_;
  std::string password_;
  std::string host_;  // the target of the session, for verdicts
  bool tls_verified_ = false;
  std::string tls_problem_;  // why verification failed
  std::unique_ptr<delivery::ClientConnection> conn_;
};

// Defaults from the configuration when it exists: hostname for EHLO and the
// sender, [dns] servers.
void apply_defaults(CheckOptions& o) {
  std::string hostname;
  std::error_code ec;
  if (std::filesystem::exists(o.config, ec)) {
    try {
      auto c = config::load(o.config);
      hostname = c.hostname;
      if (o.dns_servers.empty()) o.dns_servers = c.dns.servers;
    } catch (const config::ConfigError&) {
    }
  }
  if (hostname.empty()) {
    char buf[256] = {0};
    gethostname(buf, sizeof buf - 1);
    hostname = buf;
  }
  if (o.helo.empty())
    o.helo = hostname.find('.') != std::string::npos ? hostname : "localhost.localdomain";
  if (o.from.empty()) o.from = "postmaster@" + o.helo;
}

}  // namespace

void add_check(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CheckOptions>();
  auto* cmd = app.add_subcommand(
      "check", "Test SMTP delivery to an address, step by step, and explain failures");
  cmd->add_option("address", o->address, "the recipient to test, e.g. kate@fabrikam.com")
      ->required();
  cmd->add_option("--from", o->from, "the sender (default postmaster@<helo>)");
  cmd->add_option("--server", o->server, "test this HOST[:PORT] instead of the MX hosts");
  cmd->add_option("--port", o->port, "port of the MX hosts")->capture_default_str();
  cmd->add_flag("--starttls", o->starttls, "upgrade to TLS and show the certificate");
  cmd->add_option("--auth", o->auth_user,
                  "authenticate as USER (password from TERN_PASSWORD or a prompt); turns on "
                  "STARTTLS, and the password is sent only if the certificate verifies");
  cmd->add_flag("--insecure-auth", o->insecure_auth,
                "with --auth: send the password even without TLS, or over TLS whose "
                "certificate failed verification (test servers only)");
  cmd->add_option("--helo", o->helo, "the name to give in EHLO (default: this host's name)");
  cmd->add_flag("--no-data", o->no_data, "stop after RCPT TO");
  cmd->add_flag("--no-sender-records", o->no_sender_records,
                "do not look up the SPF, DKIM and DMARC records of the --from domain");
  cmd->add_option("--log", o->log, "append the transcript to this file");
  cmd->add_flag("--json", o->json, "machine-readable report");
  cmd->add_option("--dns-server", o->dns_servers,
                  "DNS server IP[:PORT] (default: [dns] servers or the system's)");
  cmd->add_option("--timeout", o->timeout_s, "seconds each step may take")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  cmd->add_option("-c,--config", o->config, "configuration file for defaults")
      ->capture_default_str();
  auto* dkim_key = cmd->add_option("--dkim", o->dkim_key_file,
                                   "sign the test message with this DKIM key (PEM, RSA or Ed25519) "
                                   "for the --from domain");
  cmd->add_option("--dkim-selector", o->dkim_selector, "the selector (s=) of the --dkim key")
      ->needs(dkim_key);
  dkim_key->needs("--dkim-selector");
  cmd->callback([o, &exit_code] {
    apply_defaults(*o);
    if (!o->dkim_key_file.empty()) {
      try {
        o->dkim_key = auth::DkimPrivateKey::load(o->dkim_key_file);
      } catch (const std::exception& e) {
        print_error(e.what());
        exit_code = 2;
        return;
      }
      if (o->from.find('@') == std::string::npos) {
        print_error("--dkim needs a --from address with a domain");
        exit_code = 2;
        return;
      }
    }
    CheckReport report(o->json, o->log);
    if (!report.log_ok()) {
      print_error("cannot write the log file " + o->log + ": " + std::strerror(errno));
      exit_code = 2;
      return;
    }
    report.log_only("# tern check " + o->address + " at " + smtp::rfc5322_date_now());
    asio::io_context io;
    Check check(*o, report);
    asio::co_spawn(io, check.run(io.get_executor()),
                   [&exit_code, &report](std::exception_ptr e, int code) {
                     exit_code = code;
                     if (!e) return;
                     exit_code = 1;
                     std::string what = "unexpected error";
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       what = ex.what();
                     } catch (...) {
                     }
                     print_error(what);
                     report.verdict(false, what);  // --json still gets its document
                   });
    io.run();
  });
}

}  // namespace tern::cli
