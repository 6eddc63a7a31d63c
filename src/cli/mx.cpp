// `tern mx DOMAIN [--json] [--dns-server HOST[:PORT]] [--config FILE]` (SPEC §1):
// the seed's `nslookup` with `set type=mx`, made to answer the question behind
// it — where would mail for DOMAIN go? It prints the route delivery would use
// (dns/mx_route.h): MX hosts most preferred first with their A/AAAA addresses
// and TTLs, and what the answer means (null MX, no MX, NXDOMAIN, try again).
// Exit 0: the domain can receive mail; 1: it cannot (permanent); 75
// (EX_TEMPFAIL): DNS failed temporarily; 2: bad usage or configuration.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "config/config.h"
#include "dns/mx_route.h"
#include "dns/resolver_cares.h"
#include "smtp/address.h"
#include "util/text.h"

namespace tern::cli {

namespace {

constexpr int kExitPermanent = 1;
constexpr int kExitUsage = 2;
constexpr int kExitTemporary = 75;  // EX_TEMPFAIL, sysexits(3)

struct MxOptions {
  std::string domain;
  bool json = false;
  std::vector<std::string> dns_servers;
  std::string config = "etc/tern.toml";
  bool config_given = false;
};

// A line of the human output: left column, text, and a TTL aligned after it.
struct Row {
  std::string left;
  std::string text;
  std::optional<std::uint32_t> ttl;
};

std::string exchange_name(const dns::RouteHost& h) {
  return h.name.empty() ? "." : h.name;
}

// What the route means for mail to the domain, in one sentence.
std::string meaning(const dns::MxRoute& r, const std::string& servers) {
  switch (r.kind) {
    case dns::RouteKind::kMx:
      return fmt::format(
          "{} can receive mail: its mail exchangers are tried most preferred first "
          "(equal preferences in random order, RFC 5321 §5.1)",
          r.domain);
    case dns::RouteKind::kImplicitMx:
      return fmt::format(
          "{} can receive mail: it has no MX records, so mail goes to its own A/AAAA "
          "address (implicit MX, RFC 5321 §5.1)",
          r.domain);
    case dns::RouteKind::kNullMx:
      return fmt::format(
          "{} accepts no mail: it publishes a null MX (RFC 7505); mail to it fails at once "
          "with 556 5.1.10",
          r.domain);
    case dns::RouteKind::kNoDomain:
      return fmt::format("{} does not exist (NXDOMAIN): mail to it fails permanently", r.domain);
    case dns::RouteKind::kNoAddress:
      return fmt::format("{} cannot receive mail: {}", r.domain, r.failure.lines.front());
    case dns::RouteKind::kTemporary:
      return fmt::format("temporary DNS failure for {} ({}; asked {}): try again later", r.domain,
                         r.detail, servers);
  }
  return {};
}

std::vector<Row> rows(const dns::MxRoute& r) {
  std::vector<Row> out;
  for (const auto& h : r.hosts) {
    if (r.kind == dns::RouteKind::kImplicitMx) {
      out.push_back(
          {r.domain, "has no MX records: mail goes to the domain's own address (implicit MX)", {}});
    } else {
      out.push_back(
          {r.domain,
           fmt::format("MX preference = {}, mail exchanger = {}", h.preference, exchange_name(h)),
           h.ttl});
    }
    for (const auto& a : h.addresses) {
      out.push_back({"",
                     fmt::format("{}  {} = {}", h.name,
                                 a.v6 ? "AAAA IPv6 address" : "internet address", a.address),
                     a.ttl});
    }
    if (!h.note.empty() && r.kind != dns::RouteKind::kNullMx)
      out.push_back({"", fmt::format("{}  {}", exchange_name(h), h.note), {}});
  }
  return out;
}

void print_human(const dns::MxRoute& r, const std::string& servers) {
  auto lines = rows(r);
  std::size_t left = r.domain.size() + 3, text = 0;
  for (const auto& row : lines) {
    if (row.ttl) text = std::max(text, row.text.size());
  }
  for (const auto& row : lines) {
    std::string line = fmt::format("{:<{}}{}", row.left, left, row.text);
    if (row.ttl) line += fmt::format("{:<{}}   (TTL {})", "", text - row.text.size(), *row.ttl);
    std::printf("%s\n", util::printable(line).c_str());  // names from DNS: any bytes
  }
  if (r.deliverable())
    std::printf("%s%s.\n", lines.empty() ? "" : "\n", util::printable(meaning(r, servers)).c_str());
}

nlohmann::json to_json(const dns::MxRoute& r, const std::vector<std::string>& servers,
                       const std::string& described) {
  nlohmann::json hosts = nlohmann::json::array();
  for (const auto& h : r.hosts) {
    nlohmann::json addresses = nlohmann::json::array();
    for (const auto& a : h.addresses) {
      addresses.push_back(
          {{"address", a.address}, {"family", a.v6 ? "ipv6" : "ipv4"}, {"ttl", a.ttl}});
    }
    nlohmann::json j{{"exchange", exchange_name(h)},
                     {"preference", h.preference},
                     {"ttl", h.ttl},
                     {"implicit", r.kind == dns::RouteKind::kImplicitMx},
                     {"usable", h.usable()},
                     {"addresses", std::move(addresses)}};
    if (!h.note.empty()) j["note"] = h.note;
    hosts.push_back(std::move(j));
  }
  nlohmann::json j{{"domain", r.domain},
                   {"can_receive_mail", r.deliverable()},
                   {"route", dns::route_kind_name(r.kind)},
                   {"status", r.deliverable()         ? "ok"
                              : r.temporary_failure() ? "temporary"
                                                      : "permanent"},
                   {"meaning", meaning(r, described)},
                   {"dns_servers", servers},
                   {"mx", std::move(hosts)}};
  if (!r.deliverable()) {
    j["failure"] = {{"code", r.failure.code},
                    {"enhanced", r.failure.enhanced},
                    {"text", r.failure.lines.front()}};
    if (!r.detail.empty()) j["detail"] = r.detail;
  }
  return j;
}

// --dns-server, else [dns] servers of the configuration (the default file only
// if it exists), else the system resolver (an empty list).
std::vector<std::string> dns_servers(const MxOptions& o) {
  if (!o.dns_servers.empty()) return o.dns_servers;
  if (!o.config_given && !std::filesystem::exists(o.config)) return {};
  return config::load(o.config).dns.servers;
}

dns::MxRoute look_up(const std::string& domain, const std::vector<std::string>& servers) {
  asio::io_context io;
  dns::CaresResolver resolver(io.get_executor(), dns::CaresOptions{servers});
  std::optional<dns::MxRoute> route;
  std::exception_ptr error;
  asio::co_spawn(io, dns::find_mx_route(resolver, domain),
                 [&](std::exception_ptr e, dns::MxRoute r) {
                   error = e;
                   route = std::move(r);
                 });
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*route);
}

int run(const MxOptions& o) {
  std::string domain = o.domain;
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (!smtp::valid_domain(domain, false) || domain.front() == '[') {
    print_error("\"" + o.domain + "\" is not a domain name");
    return kExitUsage;
  }
  std::vector<std::string> servers = dns_servers(o);
  dns::servers_csv(servers);  // refuse a bad server before any lookup
  std::string described =
      servers.empty() ? "the system resolver" : fmt::format("{}", fmt::join(servers, ", "));
  dns::MxRoute route = look_up(domain, servers);
  if (o.json) {
    std::printf("%s\n", json_text(to_json(route, servers, described)).c_str());
  } else {
    print_human(route, described);
  }
  if (route.deliverable()) return 0;
  print_error(meaning(route, described));
  return route.temporary_failure() ? kExitTemporary : kExitPermanent;
}

}  // namespace

void add_mx(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<MxOptions>();
  auto* cmd = app.add_subcommand(
      "mx", "Look up where mail for a domain goes: MX hosts and their addresses");
  cmd->add_option("domain", o->domain, "the mail domain, e.g. example.com")->required();
  cmd->add_flag("--json", o->json, "machine-readable output");
  cmd->add_option("--dns-server", o->dns_servers,
                  "DNS server IP[:PORT] to ask (repeatable); default: [dns] servers")
      ->type_name("HOST[:PORT]");
  auto* config = cmd->add_option("-c,--config", o->config, "configuration file for [dns] servers")
                     ->capture_default_str();
  cmd->footer(
      "Exit status: 0 the domain can receive mail, 1 it cannot, 75 temporary DNS failure, 2 "
      "usage.");
  cmd->callback([o, config, &exit_code] {
    o->config_given = config->count() > 0;
    try {
      exit_code = run(*o);
    } catch (const config::ConfigError& e) {
      print_error(std::string("bad configuration: ") + e.what());
      exit_code = kExitUsage;
    } catch (const std::invalid_argument& e) {
      print_error(e.what());
      exit_code = kExitUsage;
    } catch (const std::exception& e) {
      print_error(e.what());
      exit_code = kExitPermanent;
    }
  });
}

}  // namespace tern::cli
