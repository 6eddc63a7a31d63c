#include "cli/check_targets.h"

#include <asio/ip/address.hpp>
#include <memory>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "dns/mx_route.h"
#include "dns/resolver_cares.h"
#include "util/text.h"

namespace tern::cli {

using smtp::Step;
using Clock = std::chrono::steady_clock;

long since(Clock::time_point t) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

net::awaitable<Targets> find_targets(asio::any_io_executor ex, const CheckOptions& o_,
                                     CheckReport& r_, const smtp::Address& address) {
  Targets result;
  auto& out = result.hosts;
  if (!o_.server.empty()) {
    auto ep = config::Endpoint::parse(o_.server, o_.port);
    if (!ep) {
      r_.verdict(false, "--server \"" + o_.server + "\" is not HOST[:PORT]");
      result.usage_error = true;
      co_return result;
    }
    asio::ip::tcp::resolver resolver(ex);
    auto [ec, results] =
        co_await resolver.async_resolve(ep->host, std::to_string(ep->port), net::use_tuple);
    if (ec) {
      r_.verdict(false, "cannot resolve the server name " + ep->host + ": " + ec.message());
      co_return result;
    }
    for (const auto& e : results) out.push_back({ep->host, e.endpoint()});
    co_return result;
  }
  std::string domain = address.domain_key();
  if (domain.size() > 2 && domain.front() == '[' && domain.back() == ']') {  // kate@[192.0.2.1]
    std::string literal = domain.substr(1, domain.size() - 2);
    if (util::istarts_with(literal, "IPv6:")) literal = literal.substr(5);
    std::error_code ec;
    auto ip = asio::ip::make_address(literal, ec);
    if (ec) {
      r_.verdict(false, domain + " is not a valid address literal");
      result.usage_error = true;
      co_return result;
    }
    r_.note("the domain is an address literal: no MX lookup");
    out.push_back({ip.to_string(), {ip, o_.port}});
    co_return result;
  }
  r_.heading("MX lookup for " + domain);
  dns::CaresOptions dns_options;
  dns_options.servers = o_.dns_servers;
  // Each attempt gets a share of --timeout (c-ares doubles it on the retry).
  dns_options.timeout = std::min<std::chrono::milliseconds>(
      dns_options.timeout, std::chrono::milliseconds(o_.timeout_s * 1000 / 3 + 1));
  std::unique_ptr<dns::CaresResolver> resolver;
  try {
    resolver = std::make_unique<dns::CaresResolver>(ex, dns_options);
  } catch (const std::exception& e) {  // e.g. --dns-server is not IP[:PORT]
    r_.verdict(false, e.what());
    result.usage_error = true;
    co_return result;
  }
  auto started = Clock::now();
  auto route = co_await dns::find_mx_route(*resolver, domain);
  nlohmann::json mx = nlohmann::json::array();
  if (route.kind == dns::RouteKind::kImplicitMx)
    r_.note(domain + " has no MX records: mail goes to the domain's own address (implicit MX)");
  for (const auto& h : route.hosts) {
    std::string addresses;
    nlohmann::json list = nlohmann::json::array();
    for (const auto& a : h.addresses) {
      addresses += (addresses.empty() ? "" : ", ") + a.address;
      list.push_back(a.address);
    }
    std::string exchange = h.name.empty() ? "." : h.name;
    if (route.kind == dns::RouteKind::kImplicitMx)
      r_.note(exchange + " internet address = " + addresses);
    else
      r_.note(domain + " MX preference = " + std::to_string(h.preference) +
              ", mail exchanger = " + exchange + (addresses.empty() ? "" : " [" + addresses + "]") +
              (h.note.empty() ? "" : " (" + h.note + ")"));
    mx.push_back({{"host", exchange}, {"preference", h.preference}, {"addresses", list}});
    for (const auto& a : h.addresses) {
      std::error_code ec;
      auto ip = asio::ip::make_address(a.address, ec);
      if (!ec) out.push_back({h.name, {ip, o_.port}});
    }
  }
  r_.set("mx", mx);
  r_.set("route", std::string(dns::route_kind_name(route.kind)));
  if (!route.deliverable()) {
    std::string what = route.failure.summary();
    if (!route.detail.empty() && what.find(route.detail) == std::string::npos)
      what += " (" + route.detail + ")";
    r_.failure(Step::kDns, what, since(started), true, route.failure);
    r_.verdict(false, "no mail server for " + domain + ": " + what);
    out.clear();
  } else if (route.hosts.size() > 1) {
    r_.note("the hosts are tried most preferred first (lowest preference value)");
  }
  co_return result;
}

}  // namespace tern::cli
