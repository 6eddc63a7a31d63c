// CPU cost of DKIM on a 1 KB message (Google Benchmark): signing with
// rsa-sha256 (2048 bits) and ed25519-sha256, and verifying each with the key
// record given (no DNS). Built on demand: cmake --build build --target dkim_bench.
#include <benchmark/benchmark.h>

#include "auth/dkim_sign.h"
#include "auth/dkim_verify.h"

namespace {

using tern::auth::DkimAlgorithm;

const std::string kHeaders =
    "From: Kate <kate@fabrikam.test>\r\nTo: joe@example.test\r\nSubject: benchmark\r\n"
    "Date: Thu, 3 Dec 2026 10:00:00 +0000\r\nMessage-ID: <bench@fabrikam.test>\r\n";

std::string body_1k() {
  std::string b;
  while (b.size() < 1024 - kHeaders.size())
    b += "The quick brown fox jumps over the lazy dog.  \r\n";
  return b;
}

std::string sign(const std::shared_ptr<const tern::auth::DkimPrivateKey>& key,
                 const std::string& body) {
  tern::auth::DkimSigner s(key, "fabrikam.test", "s1", 1700000000);
  s.headers(kHeaders);
  s.body(body);
  return s.finish();
}

void BM_Sign(benchmark::State& state) {
  auto key = tern::auth::DkimPrivateKey::generate(static_cast<DkimAlgorithm>(state.range(0)));
  std::string body = body_1k();
  for (auto _ : state) benchmark::DoNotOptimize(sign(key, body));
}

void BM_Verify(benchmark::State& state) {
  auto key = tern::auth::DkimPrivateKey::generate(static_cast<DkimAlgorithm>(state.range(0)));
  std::string body = body_1k();
  std::string headers = sign(key, body) + kHeaders;
  tern::dns::TxtResult record;
  record.records.push_back({key->txt_record(), 60});
  for (auto _ : state) {
    tern::auth::DkimVerifier v(1700000100);
    v.headers(headers);
    v.body(body);
    auto r = v.finish_with([&](const std::string&) { return record; });
    if (r.size() != 1 || r[0].result != "pass") state.SkipWithError("did not verify");
  }
}

}  // namespace

BENCHMARK(BM_Sign)
    ->Arg(static_cast<int>(DkimAlgorithm::kRsaSha256))
    ->Arg(static_cast<int>(DkimAlgorithm::kEd25519Sha256));
BENCHMARK(BM_Verify)
    ->Arg(static_cast<int>(DkimAlgorithm::kRsaSha256))
    ->Arg(static_cast<int>(DkimAlgorithm::kEd25519Sha256));
BENCHMARK_MAIN();
