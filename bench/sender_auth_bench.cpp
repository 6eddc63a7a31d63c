// The CPU cost of one auth::check_sender with a warm DNS cache: SPF with an
// include and an mx term, DMARC with the organisational-domain fallback, the
// Authentication-Results field. The records come from an in-memory resolver
// behind dns::CachingResolver, so after the first round every lookup is a
// cache hit, as for a busy sending domain. Prints microseconds per check.
// Build: cmake --build build --target sender_auth_bench; run ./build/sender_auth_bench [N]
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <cstdio>
#include <ctime>
#include <string>

#include "../tests/unit/auth_fake_resolver.h"
#include "auth/sender_auth.h"

using namespace tern;

int main(int argc, char** argv) {
  int rounds = argc > 1 ? std::atoi(argv[1]) : 100000;
  test_dns::TableResolver table;
  table.txt("example.com", "v=spf1 include:_spf.provider.example mx -all")
      .txt("_spf.provider.example", "v=spf1 ip4:198.51.100.0/24 ip4:203.0.113.0/24 ~all")
      .mx("example.com", 10, "mx1.example.com")
      .host("mx1.example.com", "192.0.2.25")
      .txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com");
  dns::DnsCache cache;
  config::Config config;
  config.hostname = "mx.tern.test";
  auth::SenderAuthInput input{"192.0.2.25",
                              "mx1.example.com",
                              "alice@example.com",
                              "news.example.com",
                              {{"pass", "example.com", "s1", "abcdefgh", ""}}};
  asio::io_context io;
  std::size_t bytes = 0;
  std::clock_t start = 0, end = 0;
  asio::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        auto warm = co_await auth::check_sender(input, config, table, &cache);
        std::fputs(warm.header.c_str(), stdout);
        start = std::clock();
        for (int i = 0; i < rounds; ++i) {
          auto verdict = co_await auth::check_sender(input, config, table, &cache);
          bytes += verdict.header.size();
        }
        end = std::clock();
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();
  double us = 1e6 * static_cast<double>(end - start) / CLOCKS_PER_SEC / rounds;
  std::printf("%d checks, %.2f us CPU per check_sender (warm cache), %zu resolver questions\n",
              rounds, us, table.asked.size());
  return bytes > 0 ? 0 : 1;
}
