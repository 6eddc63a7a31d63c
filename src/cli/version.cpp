// `tern version`: the version and what it was built with.
#include <ares.h>
#include <openssl/opensslv.h>
#include <rocksdb/version.h>
#include <CLI/CLI.hpp>
#include <asio/version.hpp>

#include <cstdio>

#include "cli/commands.h"

namespace tern::cli {

namespace {
// Sanitizer builds say so: their memory use is not comparable to a release's.
#if defined(__SANITIZE_ADDRESS__)
constexpr const char* kSanitizers = ", AddressSanitizer";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr const char* kSanitizers = ", AddressSanitizer";
#else
constexpr const char* kSanitizers = "";
#endif
#else
constexpr const char* kSanitizers = "";
#endif
}  // namespace

void add_version(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("version", "Print the version and build options");
  cmd->callback([&exit_code] {
    std::printf("tern %s\n", TERN_VERSION);
    std::printf("build: %s, C++%ld%s\n", TERN_BUILD_TYPE, __cplusplus / 100 % 100, kSanitizers);
    std::printf("asio %d.%d.%d, %s, RocksDB %d.%d.%d, c-ares %s\n", ASIO_VERSION / 100000,
                ASIO_VERSION / 100 % 1000, ASIO_VERSION % 100, OPENSSL_VERSION_TEXT, ROCKSDB_MAJOR,
                ROCKSDB_MINOR, ROCKSDB_PATCH, ares_version(nullptr));
    exit_code = 0;
  });
}

}  // namespace tern::cli
