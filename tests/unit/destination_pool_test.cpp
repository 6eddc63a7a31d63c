// delivery::DestinationPool against a fake resolver and a listener on
// 127.0.0.1 that accepts and hangs up at once (every hop fails, and every
// connection is counted): special-use addresses from DNS and address
// literals are skipped with the reason in the reply, [delivery]
// private_networks lets them through, and one attempt tries at most
// kMaxHopHosts MX hosts and kMaxHopAddresses addresses.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <map>

#include "config/config.h"
#include "delivery/destination_pool.h"

namespace tern::delivery {
namespace {

using asio::ip::tcp;

class FakeResolver : public dns::Resolver {
 public:
  std::map<std::string, dns::MxResult> mx_answers;
  std::map<std::string, dns::AddressResult> address_answers;

  net::awaitable<dns::MxResult> mx(std::string domain) override {
    auto it = mx_answers.find(domain);
    co_return it != mx_answers.end() ? it->second
                                     : dns::MxResult::failure(dns::DnsError::kNoData, "no MX");
  }
  net::awaitable<dns::AddressResult> addresses(std::string host) override {
    auto it = address_answers.find(host);
    co_return it != address_answers.end()
        ? it->second
        : dns::AddressResult::failure(dns::DnsError::kNxDomain, "NXDOMAIN");
  }
  void mx(const std::string& domain, const std::string& host, std::uint16_t preference) {
    mx_answers[domain].records.push_back({host, preference, 300});
  }
  void host(const std::string& name, const std::string& address) {
    address_answers[name].records.push_back({address, 300, address.find(':') != std::string::npos});
  }
};

// Accepts on 127.0.0.1 and ::1 (when there is one) and closes each connection
// at once, counting them.
class HangUp {
 public:
  explicit HangUp(asio::io_context& io)
      : v4_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), v6_(io) {
    std::error_code ec;
    v6_.open(tcp::v6(), ec);
    if (!ec)
      v6_.bind(tcp::endpoint(asio::ip::make_address("::1"), v4_.local_endpoint().port()), ec);
    if (!ec) v6_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) v6_.close();
    accept(v4_);
    if (v6_.is_open()) accept(v6_);
  }
  std::uint16_t port() const { return v4_.local_endpoint().port(); }
  bool has_v6() const { return v6_.is_open(); }
  void stop() {
    v4_.close();
    v6_.close();
  }
  int accepted = 0;

 private:
  void accept(tcp::acceptor& a) {
    a.async_accept([this, &a](std::error_code ec, tcp::socket s) {
      if (ec) return;
      ++accepted;
      s.close();
      accept(a);
    });
  }
  tcp::acceptor v4_, v6_;
};

config::Config config_for(std::uint16_t port, const std::string& private_networks) {
  return config::parse(
      "hostname = \"mail.example.test\"\n[[listener]]\nname = \"a\"\n"
      "address = \"127.0.0.1:2525\"\n[delivery]\nstarttls = false\n"
      "connect_timeout = \"2s\"\ncommand_timeout = \"2s\"\nport = " +
          std::to_string(port) + "\nprivate_networks = " + private_networks + "\n",
      "/x/tern.toml");
}

struct Attempt {
  Outcome outcome;
  int connections = 0;
};

Attempt attempt(FakeResolver& resolver, const std::string& domain,
                const std::string& private_networks = "[]") {
  asio::io_context io;
  HangUp peer(io);
  auto config = config_for(peer.port(), private_networks);
  DestinationPool pool(io.get_executor(), config, resolver, nullptr);
  queue::Envelope envelope;
  envelope.sender = "a@example.org";
  envelope.recipients.resize(1);
  envelope.recipients[0].address = "kate@" + domain;
  std::vector<std::size_t> recipients{0};
  std::vector<RecipientOutcome> out;
  asio::co_spawn(
      io,
      pool.deliver_remote(domain, {&envelope, &recipients, "Subject: t\r\n\r\nx\r\n",
                                   std::chrono::steady_clock::now() + std::chrono::seconds(20)}),
      [&](std::exception_ptr e, std::vector<RecipientOutcome> r) {
        if (e) std::rethrow_exception(e);
        out = std::move(r);
        peer.stop();
      });
  io.run_for(std::chrono::seconds(30));
  EXPECT_EQ(out.size(), 1u);
  return {out.empty() ? Outcome{} : out[0].outcome, peer.accepted};
}

TEST(DestinationPool, SpecialUseAddressesFromDnsAreSkipped) {
  FakeResolver dns;
  dns.mx("fabrikam.test", "mx1.fabrikam.test", 10);
  dns.mx("fabrikam.test", "mx2.fabrikam.test", 20);
  dns.host("mx1.fabrikam.test", "10.0.0.5");
  dns.host("mx2.fabrikam.test", "127.0.0.1");
  dns.host("mx2.fabrikam.test", "::1");
  auto a = attempt(dns, "fabrikam.test");
  EXPECT_EQ(a.connections, 0);
  EXPECT_TRUE(a.outcome.temporary());  // DNS may be mended
  EXPECT_EQ(a.outcome.reply.summary(),
            "451 4.4.4 No address of fabrikam.test may be used: "
            "mx1.fabrikam.test: 10.0.0.5 skipped: private-use address (RFC 6890), not in "
            "[delivery] private_networks; "
            "mx2.fabrikam.test: 127.0.0.1 skipped: loopback address (RFC 6890), not in "
            "[delivery] private_networks; "
            "mx2.fabrikam.test: ::1 skipped: loopback address (RFC 6890), not in "
            "[delivery] private_networks");
}

TEST(DestinationPool, PrivateNetworksLetTheListedOnesThrough) {
  FakeResolver dns;
  dns.mx("fabrikam.test", "mx1.fabrikam.test", 10);
  dns.mx("fabrikam.test", "mx2.fabrikam.test", 20);
  dns.host("mx1.fabrikam.test", "10.0.0.5");
  dns.host("mx2.fabrikam.test", "127.0.0.1");
  auto a = attempt(dns, "fabrikam.test", "[\"127.0.0.0/8\"]");
  EXPECT_EQ(a.connections, 1);
  EXPECT_TRUE(a.outcome.temporary());
  // The hop that was tried failed; the one skipped is named after it.
  const std::string text = a.outcome.reply.summary();
  EXPECT_TRUE(text.starts_with("451 4.4.2 Lost connection with mx2.fabrikam.test[127.0.0.1]"))
      << text;
  EXPECT_TRUE(
      text.ends_with("; mx1.fabrikam.test: 10.0.0.5 skipped: private-use address (RFC "
                     "6890), not in [delivery] private_networks"))
      << text;
}

TEST(DestinationPool, ImplicitMxIsCheckedToo) {
  FakeResolver dns;
  dns.host("aonly.test", "169.254.169.254");
  auto a = attempt(dns, "aonly.test");
  EXPECT_EQ(a.connections, 0);
  EXPECT_NE(a.outcome.reply.summary().find("169.254.169.254 skipped: link-local address"),
            std::string::npos)
      << a.outcome.reply.summary();
}

TEST(DestinationPool, AddressLiterals) {
  FakeResolver dns;  // never asked: a literal goes without DNS
  auto refused = attempt(dns, "[127.0.0.1]");
  EXPECT_EQ(refused.connections, 0);
  EXPECT_TRUE(refused.outcome.permanent());  // the envelope cannot change
  EXPECT_EQ(refused.outcome.reply.summary(),
            "550 5.4.4 Mail for [127.0.0.1] not sent: 127.0.0.1 skipped: loopback address (RFC "
            "6890), not in [delivery] private_networks");

  auto mapped = attempt(dns, "[ipv6:::ffff:127.0.0.1]");
  EXPECT_TRUE(mapped.outcome.permanent());
  EXPECT_NE(mapped.outcome.reply.summary().find("loopback address"), std::string::npos);

  auto bad = attempt(dns, "[x-tag:127.0.0.1]");
  EXPECT_EQ(bad.outcome.reply.summary(),
            "550 5.1.2 Address literal [x-tag:127.0.0.1] is neither an IPv4 nor an IPv6 address");

  auto allowed = attempt(dns, "[127.0.0.1]", "[\"127.0.0.1/32\"]");
  EXPECT_EQ(allowed.connections, 1);
  EXPECT_TRUE(allowed.outcome.temporary());
}

TEST(DestinationPool, AtMostFiveMxHosts) {
  FakeResolver dns;
  for (int i = 0; i < 7; ++i) {
    std::string name = "mx" + std::to_string(i) + ".fabrikam.test";
    dns.mx("fabrikam.test", name, static_cast<std::uint16_t>(10 * (i + 1)));
    dns.host(name, "127.0.0.1");
  }
  auto a = attempt(dns, "fabrikam.test", "[\"127.0.0.0/8\"]");
  EXPECT_EQ(a.connections, static_cast<int>(kMaxHopHosts));
  EXPECT_NE(a.outcome.reply.summary().find(
                "mx5.fabrikam.test not tried (at most 5 MX hosts and 10 addresses per attempt); "
                "mx6.fabrikam.test not tried"),
            std::string::npos)
      << a.outcome.reply.summary();
}

TEST(DestinationPool, AtMostTenAddresses) {
  FakeResolver dns;
  dns.mx("fabrikam.test", "mx.fabrikam.test", 10);
  for (int i = 0; i < 13; ++i) dns.host("mx.fabrikam.test", "127.0.0.1");
  auto a = attempt(dns, "fabrikam.test", "[\"127.0.0.0/8\"]");
  EXPECT_EQ(a.connections, static_cast<int>(kMaxHopAddresses));
  EXPECT_NE(a.outcome.reply.summary().find("127.0.0.1 not tried (at most 10 addresses per "
                                           "attempt)"),
            std::string::npos)
      << a.outcome.reply.summary();
}

}  // namespace
}  // namespace tern::delivery
