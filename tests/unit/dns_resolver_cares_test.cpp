// dns::CaresResolver on a real event loop against an in-process UDP responder
// on 127.0.0.1: answers, NXDOMAIN, SERVFAIL, a server that never answers (a
// bounded timeout, never a hang), destruction with a query in flight, and no
// work left on the loop once queries are done.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <map>

#include "dns/resolver_cares.h"

namespace tern::dns {
namespace {

using asio::ip::udp;
using Bytes = std::vector<unsigned char>;
using Clock = std::chrono::steady_clock;

struct Rr {
  unsigned type;
  Bytes data;  // RDATA
};

struct Reply {
  unsigned rcode = 0;
  std::vector<Rr> answers;
};

void put16(Bytes& b, unsigned v) {
  b.push_back(static_cast<unsigned char>(v >> 8));
  b.push_back(static_cast<unsigned char>(v));
}

// Answers queries from a table keyed by "name/type"; unknown: NXDOMAIN. Every
// record has TTL 600 and is owned by the question's name.
class Responder {
 public:
  explicit Responder(asio::io_context& io)
      : socket_(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io, serve(), asio::detached);
  }
  std::string address() const {
    return "127.0.0.1:" + std::to_string(socket_.local_endpoint().port());
  }
  void close() { socket_.close(); }

  std::map<std::string, Reply> table;
  int queries = 0;

 private:
  net::awaitable<void> serve() {
    unsigned char in[512];
    udp::endpoint from;
    for (;;) {
      auto [ec, n] = co_await socket_.async_receive_from(asio::buffer(in), from, net::use_tuple);
      if (ec) co_return;
      ++queries;
      std::size_t pos = 12;
      std::string qname;
      while (pos < n && in[pos] != 0) {
        qname += (qname.empty() ? "" : ".") + std::string(in + pos + 1, in + pos + 1 + in[pos]);
        pos += in[pos] + 1u;
      }
      unsigned qtype = in[pos + 1] << 8 | in[pos + 2];
      auto it = table.find(qname + "/" + std::to_string(qtype));
      Reply reply = it != table.end() ? it->second : Reply{3, {}};
      Bytes out(in, in + 2);  // the query's id
      put16(out, 0x8180 | reply.rcode);
      put16(out, 1);
      put16(out, static_cast<unsigned>(reply.answers.size()));
      put16(out, 0);
      put16(out, 0);
      out.insert(out.end(), in + 12, in + pos + 5);  // the question, as asked
      for (const auto& rr : reply.answers) {
        for (unsigned v : {0xC00Cu, rr.type, 1u, 0u, 600u, static_cast<unsigned>(rr.data.size())})
          put16(out, v);
        out.insert(out.end(), rr.data.begin(), rr.data.end());
      }
      co_await socket_.async_send_to(asio::buffer(out), from, net::use_tuple);
    }
  }
  udp::socket socket_;
};

Rr mx(unsigned preference, std::string_view host) {
  Bytes d;
  put16(d, preference);
  for (std::size_t start = 0; start < host.size();) {
    auto end = std::min(host.find('.', start), host.size());
    d.push_back(static_cast<unsigned char>(end - start));
    d.insert(d.end(), host.begin() + static_cast<std::ptrdiff_t>(start),
             host.begin() + static_cast<std::ptrdiff_t>(end));
    start = end + 1;
  }
  d.push_back(0);
  return {15, d};
}

// Runs task on io until it completes; fails the test if the loop still has
// work when the task is done (a leaked socket wait or timer).
template <typename T>
T run(asio::io_context& io, net::awaitable<T> task, std::function<void()> after = {}) {
  std::optional<T> result;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    result = std::move(value);
    if (after) after();
  });
  io.run_for(std::chrono::seconds(20));
  EXPECT_TRUE(io.stopped()) << "work left on the event loop";
  EXPECT_TRUE(result.has_value());
  return result ? std::move(*result) : T{};
}

TEST(DnsCaresResolver, AnswersFromTheConfiguredServer) {
  asio::io_context io;
  Responder server(io);
  server.table["example.test/15"] = {0, {mx(20, "mx2.example.test"), mx(10, "mx1.example.test")}};
  server.table["mx1.example.test/1"] = {0, {{1, {127, 0, 0, 2}}}};
  server.table["mx1.example.test/28"] = {
      0, {{28, Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}}};
  CaresResolver resolver(io.get_executor(), {{server.address()}});
  auto both = [&]() -> net::awaitable<std::pair<MxResult, AddressResult>> {
    auto m = co_await resolver.mx("example.test.");
    auto a = co_await resolver.addresses("mx1.example.test");
    co_return std::pair{m, a};
  };
  auto [m, a] = run(io, both(), [&] { server.close(); });
  ASSERT_TRUE(m.ok()) << m.message;
  EXPECT_EQ(m.records,
            (std::vector<MxRecord>{{"mx2.example.test", 20, 600}, {"mx1.example.test", 10, 600}}));
  ASSERT_TRUE(a.ok()) << a.message;
  EXPECT_EQ(a.records, (std::vector<AddressRecord>{{"127.0.0.2", 600, false}, {"::1", 600, true}}));
  EXPECT_EQ(server.queries, 3);
}

TEST(DnsCaresResolver, NxDomainNoDataAndServerFailure) {
  asio::io_context io;
  Responder server(io);
  server.table["nomx.test/15"] = {0, {}};
  server.table["broken.test/15"] = {2, {}};  // SERVFAIL
  CaresResolver resolver(io.get_executor(),
                         {{server.address()}, std::chrono::milliseconds(200), 1});
  auto three = [&]() -> net::awaitable<std::vector<MxResult>> {
    std::vector<MxResult> out;
    for (const char* d : {"nx.test", "nomx.test", "broken.test"})
      out.push_back(co_await resolver.mx(d));
    co_return out;
  };
  auto results = run(io, three(), [&] { server.close(); });
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].error, DnsError::kNxDomain);
  EXPECT_EQ(results[1].error, DnsError::kNoData);
  EXPECT_EQ(results[2].error, DnsError::kTemporary);
}

TEST(DnsCaresResolver, TxtRecordsJoinTheirStrings) {
  asio::io_context io;
  Responder server(io);
  Bytes spf{6, 'v', '=', 's', 'p', 'f', '1', 5, ' ', '-', 'a', 'l', 'l'};  // two strings
  Bytes other{3, 'x', '=', '1'};
  server.table["example.test/16"] = {0, {{16, spf}, {16, other}}};
  server.table["nodata.test/16"] = {0, {}};
  CaresResolver resolver(io.get_executor(),
                         {{server.address()}, std::chrono::milliseconds(200), 1});
  auto three = [&]() -> net::awaitable<std::vector<TxtResult>> {
    std::vector<TxtResult> out;
    for (const char* d : {"example.test.", "nodata.test", "nx.test"})
      out.push_back(co_await resolver.txt(d));
    co_return out;
  };
  auto results = run(io, three(), [&] { server.close(); });
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0].ok()) << results[0].message;
  EXPECT_EQ(results[0].records, (std::vector<TxtRecord>{{"v=spf1 -all", 600}, {"x=1", 600}}));
  EXPECT_EQ(results[1].error, DnsError::kNoData);
  EXPECT_EQ(results[2].error, DnsError::kNxDomain);
}

TEST(DnsCaresResolver, SilentServerTimesOutWithoutBlocking) {
  asio::io_context io;
  udp::socket silent(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::string address = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  CaresResolver resolver(io.get_executor(), {{address}, std::chrono::milliseconds(100), 2});
  int ticks = 0;  // the loop keeps running other work while the query waits
  asio::steady_timer ticker(io);
  std::function<void()> tick = [&] {
    ticker.expires_after(std::chrono::milliseconds(20));
    ticker.async_wait([&](std::error_code ec) {
      if (!ec && ++ticks < 5) tick();
    });
  };
  tick();
  auto start = Clock::now();
  auto result = run(io, resolver.mx("example.test"));
  EXPECT_EQ(result.error, DnsError::kTemporary);
  EXPECT_NE(result.message.find("Timeout"), std::string::npos) << result.message;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(ticks, 5);
}

TEST(DnsCaresResolver, DestroyedWithAQueryInFlightCompletesIt) {
  asio::io_context io;
  udp::socket silent(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::string address = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  auto resolver = std::make_unique<CaresResolver>(io.get_executor(), CaresOptions{{address}});
  asio::steady_timer later(io, std::chrono::milliseconds(50));
  later.async_wait([&](std::error_code) { resolver.reset(); });
  auto start = Clock::now();
  auto result = run(io, resolver->mx("example.test"));
  EXPECT_EQ(result.error, DnsError::kTemporary);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(DnsCaresResolver, RefusesServersThatAreNotAddresses) {
  asio::io_context io;
  EXPECT_THROW(CaresResolver(io.get_executor(), {{"dns.example.test"}}), std::invalid_argument);
}

}  // namespace
}  // namespace tern::dns
