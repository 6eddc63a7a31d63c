// `tern spf IP SENDER [--helo NAME] [--from-domain DOMAIN] [--dns-server H[:P]]
// [--config FILE]`: the SPF check tern runs on received mail (RFC 7208),
// from the command line: the result word on the first line, then why and how
// many lookups it took. SENDER "<>" (or "") is the null sender: the HELO
// identity is checked. --from-domain also runs DMARC and prints the whole
// Authentication-Results field a message would get (no DKIM signature).
// Exit 0 when the check ran (whatever its result), 2 on bad usage.
#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <cstdio>
#include <filesystem>

#include "auth/sender_auth.h"
#include "auth/spf.h"
#include "cli/commands.h"
#include "config/config.h"
#include "dns/caching_resolver.h"
#include "dns/resolver_cares.h"
#include "util/cidr.h"
#include "util/text.h"

namespace tern::cli {

namespace {

constexpr int kExitUsage = 2;

struct SpfOptions {
  std::string ip;
  std::string sender;
  std::string helo;
  std::string from_domain;
  std::vector<std::string> dns_servers;
  std::string config = "etc/tern.toml";
  bool config_given = false;
};

template <typename T>
T run_on_loop(asio::io_context& io, net::awaitable<T> task) {
  std::optional<T> result;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) result = std::move(value);
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

int run(const SpfOptions& o) {
  if (!util::IpAddress::parse(o.ip)) {
    print_error("\"" + o.ip + "\" is not an IP address");
    return kExitUsage;
  }
  std::string sender = o.sender == "<>" ? "" : o.sender;
  if (sender.empty() && o.helo.empty()) {
    print_error("the null sender needs --helo: its HELO identity is what SPF checks");
    return kExitUsage;
  }
  config::Config config;
  if (o.config_given || std::filesystem::exists(o.config)) config = config::load(o.config);
  std::vector<std::string> servers = o.dns_servers.empty() ? config.dns.servers : o.dns_servers;
  asio::io_context io;
  dns::CaresResolver cares(io.get_executor(), dns::CaresOptions{servers});
  dns::DnsCache cache;
  dns::CachingResolver resolver(cares, cache);
  auth::SpfOutcome spf = run_on_loop(io, auth::spf_check_sender(resolver, o.ip, sender, o.helo));
  std::printf("%s\n", std::string(auth::spf_result_name(spf.result)).c_str());
  std::printf("domain: %s\nreason: %s\nlookups: %d\n", util::printable(spf.domain).c_str(),
              util::printable(spf.reason).c_str(), spf.dns_lookups);
  if (!o.from_domain.empty()) {
    if (config.hostname.empty()) config.hostname = "localhost";
    config.sender_auth.verify = true;
    auth::SenderAuthInput input{o.ip, o.helo, sender, o.from_domain, {}};
    io.restart();
    auto verdict = run_on_loop(io, auth::check_sender(input, config, resolver, nullptr));
    std::string header = verdict.header;
    std::string shown;
    for (char c : header) {
      if (c != '\r') shown += c;
    }
    std::printf("%s", util::printable(shown, util::kNoLimit, util::Keep::kJson).c_str());
    const char* action = verdict.action == auth::SenderAuthVerdict::Action::kReject ? "reject"
                         : verdict.action == auth::SenderAuthVerdict::Action::kQuarantine
                             ? "quarantine"
                             : "accept";
    std::printf("action: %s\n", action);
  }
  return 0;
}

}  // namespace

void add_spf(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<SpfOptions>();
  auto* cmd = app.add_subcommand(
      "spf", "Check a client address against a sender's SPF policy (RFC 7208), as tern does");
  cmd->add_option("ip", o->ip, "the client's IP address")->required();
  cmd->add_option("sender", o->sender, "the MAIL FROM address; <> for the null sender")->required();
  cmd->add_option("--helo", o->helo, "the EHLO/HELO name (checked for the null sender)");
  cmd->add_option("--from-domain", o->from_domain,
                  "the From domain: also evaluate DMARC and print Authentication-Results");
  cmd->add_option("--dns-server", o->dns_servers,
                  "DNS server IP[:PORT] to ask (repeatable); default: [dns] servers")
      ->type_name("HOST[:PORT]");
  auto* config = cmd->add_option("-c,--config", o->config, "configuration file for [dns] servers")
                     ->capture_default_str();
  cmd->callback([o, config, &exit_code] {
    o->config_given = config->count() > 0;
    exit_code = run_guarded([&] { return run(*o); });
  });
}

}  // namespace tern::cli
