// What `tern check` is given and where it goes: the options, the hosts to try
// (from --server, an address literal, or the recipient domain's MX route) and
// the lookup that finds them, printed as it happens (check_report.h).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli/check_report.h"
#include "net/awaitable.h"
#include "smtp/address.h"

namespace tern::auth {
class DkimPrivateKey;
}

namespace tern::cli {

struct CheckOptions {
  std::string address, from, server, auth_user, helo, log, config = "etc/tern.toml";
  std::vector<std::string> dns_servers;
  bool starttls = false, no_data = false, json = false;
  bool no_sender_records = false;  // skip the --from domain's SPF/DKIM/DMARC records
  bool insecure_auth = false;      // --auth without TLS, or over TLS that failed verification
  int timeout_s = 30;
  std::uint16_t port = 25;
  // --dkim KEYFILE --dkim-selector S: the test message is signed for the
  // --from domain with this key (loaded before the check starts).
  std::string dkim_key_file, dkim_selector;
  std::shared_ptr<const auth::DkimPrivateKey> dkim_key;
};

// A host to try: its name (the MX exchange, or what --server named) and address.
struct Target {
  std::string name;
  asio::ip::tcp::endpoint endpoint;

  // "mx1.fabrikam.com [192.168.1.10]:25", or "192.168.1.10:25" when named by address.
  std::string label() const {
    std::string ip = endpoint.address().to_string();
    if (endpoint.address().is_v6()) ip = "[" + ip + "]";
    std::string port = ":" + std::to_string(endpoint.port());
    return name == endpoint.address().to_string() ? ip + port : name + " [" + ip + "]" + port;
  }
};

struct Targets {
  std::vector<Target> hosts;  // in the order to try; empty: the verdict is given
  bool usage_error = false;   // the options were wrong (exit 2)
};

net::awaitable<Targets> find_targets(asio::any_io_executor ex, const CheckOptions& o,
                                     CheckReport& report, const smtp::Address& address);

// Milliseconds since t, for the report.
long since(std::chrono::steady_clock::time_point t);

}  // namespace tern::cli
