// `tern check ADDRESS`: the seed's whole procedure, automated (SPEC §1) — MX
// lookup, connect in preference order (the next host when one cannot be
// reached), banner, EHLO (HELO if refused), optional STARTTLS with the
// certificate shown and optional AUTH, MAIL FROM, RCPT TO … NOTIFY=success,failure,
// DATA with a test message (or --no-data), QUIT. Every step has a timeout.
// Exit 0 only when the test message was queued (or RCPT accepted with --no-data).
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "cli/check_report.h"
#include "cli/commands.h"
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

struct CheckOptions {
  std::string address, from, server, auth_user, helo, log, config = "etc/tern.toml";
  std::vector<std::string> dns_servers;
  bool starttls = false, no_data = false, json = false;
  int timeout_s = 30;
  std::uint16_t port = 25;
};

long since(Clock::time_point t) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

struct Target {
  std::string name;
  asio::ip::tcp::endpoint endpoint;
};

std::string read_password(const std::string& user) {
  if (const char* env = std::getenv("TERN_PASSWORD")) return env;
  if (!isatty(STDIN_FILENO)) return {};
  std::fprintf(stderr, "Password for %s: ", user.c_str());
  termios old{};
  tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  std::string line;
  std::getline(std::cin, line);
  tcsetattr(STDIN_FILENO, TCSANOW, &old);
  std::fprintf(stderr, "\n");
  return line;
}

class Check {
 public:
  Check(const CheckOptions& o, CheckReport& report) : o_(o), r_(report) {}

  net::awaitable<int> run(asio::any_io_executor ex) {
    auto address = smtp::parse_address(o_.address);
    if (!address) {
      r_.verdict(false, "\"" + o_.address + "\" is not an e-mail address (expected user@domain)");
      co_return 2;
    }
    r_.set("address", o_.address);
    auto targets = co_await find_targets(ex, address->domain_key());
    if (targets.empty()) co_return 1;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const auto& t = targets[i];
      r_.heading("OPEN " + t.name + " [" + t.endpoint.address().to_string() + "] port " +
                 std::to_string(t.endpoint.port()));
      auto started = Clock::now();
      std::string error;
      conn_ = co_await delivery::ClientConnection::connect(ex, t.endpoint, seconds(), error);
      if (!conn_) {
        r_.failure(Step::kConnect,
                   "Could not open connection to the host, on port " +
                       std::to_string(t.endpoint.port()) + ": " + error,
                   since(started));
        if (i + 1 < targets.size()) r_.note("Trying the next host.");
        continue;
      }
      r_.note("connected in " + std::to_string(since(started)) + " ms");
      r_.set("host", t.name);
      r_.set("host_address", t.endpoint.address().to_string());
      auto greeting = co_await read(Step::kGreeting);
      if (!greeting) co_return 1;
      if (greeting->code / 100 == 4 && i + 1 < targets.size()) {
        r_.note("Trying the next host.");
        continue;
      }
      if (!greeting->positive()) {
        r_.verdict(false, "the server refused the connection: " + greeting->summary());
        co_return 1;
      }
      co_return co_await converse(t);
    }
    r_.verdict(false, "no mail server for " + address->domain + " could be reached");
    co_return 1;
  }

 private:
  std::chrono::seconds seconds() const { return std::chrono::seconds(o_.timeout_s); }

  net::awaitable<std::vector<Target>> find_targets(asio::any_io_executor ex,
                                                   const std::string& domain) {
    std::vector<Target> out;
    if (!o_.server.empty()) {
      auto ep = config::Endpoint::parse(o_.server, o_.port);
      if (!ep) {
        r_.verdict(false, "--server \"" + o_.server + "\" is not HOST[:PORT]");
        co_return out;
      }
      asio::ip::tcp::resolver resolver(ex);
      auto [ec, results] =
          co_await resolver.async_resolve(ep->host, std::to_string(ep->port), net::use_tuple);
      if (ec) {
        r_.verdict(false, "cannot resolve " + ep->host + ": " + ec.message());
        co_return out;
      }
      for (const auto& e : results) out.push_back({ep->host, e.endpoint()});
      co_return out;
    }
    r_.heading("MX lookup for " + domain);
    dns::CaresOptions dns_options;
    dns_options.servers = o_.dns_servers;
    dns::CaresResolver resolver(ex, dns_options);
    auto route = co_await dns::find_mx_route(resolver, domain);
    nlohmann::json mx = nlohmann::json::array();
    for (const auto& h : route.hosts) {
      std::string addresses;
      for (const auto& a : h.addresses) addresses += (addresses.empty() ? "" : ", ") + a.address;
      r_.note(domain + " MX preference = " + std::to_string(h.preference) +
              ", mail exchanger = " + h.name + (addresses.empty() ? "" : " [" + addresses + "]") +
              (h.note.empty() ? "" : " (" + h.note + ")"));
      mx.push_back({{"host", h.name}, {"preference", h.preference}, {"addresses", addresses}});
      for (const auto& a : h.addresses) {
        std::error_code ec;
        auto ip = asio::ip::make_address(a.address, ec);
        if (!ec) out.push_back({h.name, {ip, o_.port}});
      }
    }
    if (route.kind == dns::RouteKind::kImplicitMx)
      r_.note("no MX records: mail goes to the domain's own address");
    r_.set("mx", mx);
    if (!route.deliverable()) {
      r_.verdict(false, "no route for " + domain + ": " + route.failure.summary() +
                            (route.detail.empty() ? "" : " (" + route.detail + ")"));
      out.clear();
    }
    co_return out;
  }

  net::awaitable<std::optional<smtp::Reply>> read(Step step) {
    auto started = Clock::now();
    auto result = co_await conn_->read_reply(seconds());
    if (!result.reply) {
      r_.failure(step, result.error, since(started));
      r_.verdict(false, "no reply at " + std::string(smtp::step_name(step)) + ": " + result.error);
      co_return std::nullopt;
    }
    r_.reply(step, *result.reply, since(started));
    co_return result.reply;
  }

  // shown: what the report prints instead of line (secrets are never shown).
  net::awaitable<std::optional<smtp::Reply>> command(Step step, std::string line,
                                                     std::string shown = {}) {
    r_.sent(shown.empty() ? line : shown);
    bool sent = co_await conn_->send(line + "\r\n", seconds());
    if (!sent) {
      r_.failure(step, "the connection was closed", 0);
      r_.verdict(false,
                 "the server closed the connection at " + std::string(smtp::step_name(step)));
      co_return std::nullopt;
    }
    co_return co_await read(step);
  }

  // A failed step ends the check: QUIT politely, then the verdict.
  net::awaitable<int> fail_at(Step step, const smtp::Reply& reply) {
    co_await command(Step::kQuit, "QUIT");
    r_.verdict(false, "at " + std::string(smtp::step_name(step)) + ": " + reply.summary());
    co_return 1;
  }

  net::awaitable<std::optional<delivery::Capabilities>> hello() {
    auto reply = co_await command(Step::kEhlo, "EHLO " + o_.helo);
    if (!reply) co_return std::nullopt;
    if (reply->code / 100 == 5 && reply->code != 501) {
      reply = co_await command(Step::kEhlo, "HELO " + o_.helo);
      if (!reply) co_return std::nullopt;
    }
    if (!reply->positive()) {
      co_await fail_at(Step::kEhlo, *reply);
      co_return std::nullopt;
    }
    auto caps = delivery::Capabilities::parse(*reply);
    std::string list;
    for (std::size_t i = 1; i < reply->lines.size(); ++i)
      list += (i > 1 ? ", " : "") + reply->lines[i];
    if (!list.empty()) r_.note("extensions: " + list);
    co_return caps;
  }

  net::awaitable<bool> start_tls(const Target& t) {
    auto reply = co_await command(Step::kStartTls, "STARTTLS");
    if (!reply) co_return false;
    if (reply->code != 220) {
      co_await fail_at(Step::kStartTls, *reply);
      co_return false;
    }
    auto context = tls::client_context(false);
    tls::expect_host(*context, t.name);
    auto error = co_await conn_->start_tls(*context, t.name, seconds());
    if (!error.empty()) {
      r_.failure(Step::kStartTls, "TLS negotiation failed: " + error, 0);
      r_.verdict(false, "TLS negotiation failed: " + error);
      co_return false;
    }
    auto cert = tls::peer_certificate(conn_->ssl());
    r_.note("TLS: " + net::tls_description(conn_->ssl()));
    r_.note("certificate subject: " + cert.subject);
    r_.note("certificate issuer:  " + cert.issuer);
    r_.note("valid from " + cert.not_before + " to " + cert.not_after);
    r_.note(std::string("verification: ") + (cert.verified
                                                 ? "ok (trusted chain, name matches " + t.name + ")"
                                                 : "FAILED: " + cert.verify_result));
    r_.set("tls", {{"protocol", net::tls_description(conn_->ssl())},
                   {"subject", cert.subject},
                   {"issuer", cert.issuer},
                   {"not_before", cert.not_before},
                   {"not_after", cert.not_after},
                   {"verified", cert.verified},
                   {"verify_result", cert.verify_result}});
    co_return true;
  }

  net::awaitable<bool> authenticate(const delivery::Capabilities& caps) {
    std::string password = read_password(o_.auth_user);
    bool plain = caps.auth.empty() ||
                 std::find(caps.auth.begin(), caps.auth.end(), "PLAIN") != caps.auth.end();
    std::optional<smtp::Reply> reply;
    if (plain) {
      std::string blob = std::string(1, '\0') + o_.auth_user + '\0' + password;
      reply = co_await command(Step::kAuth, "AUTH PLAIN " + util::base64_encode(blob),
                               "AUTH PLAIN ****");
    } else {
      reply = co_await command(Step::kAuth, "AUTH LOGIN");
      if (reply && reply->code == 334)
        reply = co_await command(Step::kAuth, util::base64_encode(o_.auth_user));
      if (reply && reply->code == 334)
        reply = co_await command(Step::kAuth, util::base64_encode(password), "****");
    }
    if (!reply) co_return false;
    if (!reply->positive()) {
      co_await fail_at(Step::kAuth, *reply);
      co_return false;
    }
    co_return true;
  }

  std::string test_message() const {
    return "From: <" + o_.from + ">\r\nTo: <" + o_.address +
           ">\r\nSubject: Test from tern check\r\nDate: " + smtp::rfc5322_date_now() +
           "\r\nMessage-ID: <" + util::random_uuid() + "@" + o_.helo +
           ">\r\n\r\nThis is a test message sent by tern check to test SMTP "
           "communication.\r\n.\r\n";
  }

  net::awaitable<int> converse(const Target& t) {
    auto caps = co_await hello();
    if (!caps) co_return 1;
    if (o_.starttls) {
      bool secured = co_await start_tls(t);
      if (!secured) co_return 1;
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
      co_await command(Step::kQuit, "QUIT");
      r_.verdict(true,
                 t.name + " accepts mail for " + o_.address + " (stopped before DATA: --no-data)");
      co_return 0;
    }
    reply = co_await command(Step::kData, "DATA");
    if (!reply) co_return 1;
    if (reply->code != 354) co_return co_await fail_at(Step::kData, *reply);
    r_.sent("(test message: Subject: Test from tern check) .");
    bool sent = co_await conn_->send(test_message(), seconds());
    if (!sent) {
      r_.verdict(false, "the connection was closed while sending the message");
      co_return 1;
    }
    reply = co_await read(Step::kMessage);
    if (!reply) co_return 1;
    if (!reply->positive()) co_return co_await fail_at(Step::kMessage, *reply);
    co_await command(Step::kQuit, "QUIT");
    r_.verdict(true, "the test message was queued by " + t.name + ": " + reply->summary());
    co_return 0;
  }

  CheckOptions o_;
  CheckReport& r_;
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
                  "authenticate as USER (password from TERN_PASSWORD or a prompt)");
  cmd->add_option("--helo", o->helo, "the name to give in EHLO (default: this host's name)");
  cmd->add_flag("--no-data", o->no_data, "stop after RCPT TO");
  cmd->add_option("--log", o->log, "append the transcript to this file");
  cmd->add_flag("--json", o->json, "machine-readable report");
  cmd->add_option("--dns-server", o->dns_servers,
                  "DNS server IP[:PORT] (default: [dns] servers or the system's)");
  cmd->add_option("--timeout", o->timeout_s, "seconds each step may take")->capture_default_str();
  cmd->add_option("-c,--config", o->config, "configuration file for defaults")
      ->capture_default_str();
  cmd->callback([o, &exit_code] {
    apply_defaults(*o);
    CheckReport report(o->json, o->log);
    asio::io_context io;
    Check check(*o, report);
    asio::co_spawn(io, check.run(io.get_executor()), [&exit_code](std::exception_ptr e, int code) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          print_error(ex.what());
        }
      }
      exit_code = e ? 1 : code;
    });
    io.run();
  });
}

}  // namespace tern::cli
