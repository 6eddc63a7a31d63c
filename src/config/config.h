// tern's configuration: the TOML file of SPEC §2 turned into typed values.
// load() refuses a bad file with a ConfigError naming the file, the line and the
// key (an unknown key is an error too: a typo must not silently do nothing).
// Relative paths are resolved against the folder of the configuration file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "util/cidr.h"

namespace tern::config {

enum class TlsMode { kNone, kStartTls, kImplicit };
enum class AuthMode { kNone, kOptional, kRequired };

struct Endpoint {
  std::string host;  // "127.0.0.1", "::1", or a name
  std::uint16_t port = 0;
  std::string str() const;  // "127.0.0.1:25", "[::1]:25"
  // Parses "host:port", "[v6]:port"; without a port, default_port.
  static std::optional<Endpoint> parse(std::string_view text, std::uint16_t default_port = 0);
};

struct Listener {
  std::string name;
  Endpoint address;
  TlsMode tls = TlsMode::kNone;
  AuthMode auth = AuthMode::kNone;
  std::uint64_t max_message_size = 37748736;
  std::uint32_t max_recipients = 200;
  std::filesystem::path certificate;
  std::filesystem::path private_key;
  bool require_tls = false;
  bool allow_plaintext_auth = false;  // offer AUTH before TLS (loopback testing only)
  std::uint32_t max_errors = 10;
  // A whole command line must arrive within command_timeout (RFC 5321
  // §4.5.3.2.7), and a whole message (DATA or all BDAT chunks) within
  // data_timeout: a client sending a byte now and then cannot hold a slot.
  std::uint64_t command_timeout_ms = 5 * 60 * 1000;
  std::uint64_t data_timeout_ms = 10 * 60 * 1000;
  std::uint32_t max_connections = 20000;          // live connections on this listener
  std::uint32_t max_connections_per_source = 20;  // from one client IP (SPEC §2)
};

struct Mailbox {
  std::string address;  // "kate@example.test"
  std::filesystem::path maildir;
  std::optional<Endpoint> lmtp;
  std::string password;  // crypt(3) hash; empty: no AUTH for this user
  std::vector<std::string> aliases;
};

struct Spool {
  std::string backend = "rocksdb";
  std::filesystem::path path;
  std::uint64_t min_free = 64ull * 1024 * 1024;  // refuse mail (452 4.3.1) below this
  std::string postgres;                          // connection string, backend = "postgres"
};

// A node of a cluster sharing one PostgreSQL-held queue (SPEC §6).
struct Cluster {
  std::string node;  // this node's name in leases; unset: the machine's host name (gethostname)
  std::uint64_t lease_ms = 60'000;  // how long a node holds a message it delivers
};

// [[dkim]]: mail from domain, submitted by an authenticated client or a relay
// network, is signed with this key (RFC 6376; RSA or Ed25519, RFC 8463).
struct DkimKey {
  std::string domain;  // lower case
  std::string selector;
  std::filesystem::path private_key;  // PEM
};

// [sender_auth]: SPF, DKIM and DMARC checks on mail from unauthenticated clients.
struct SenderAuth {
  bool verify = true;
  bool dmarc_reject = true;  // 550 5.7.509 for DMARC failures of p=reject domains
};

struct Queue {
  std::vector<std::uint64_t> retry_ms{60'000, 300'000, 900'000, 1'800'000, 3'600'000};
  std::uint64_t delay_notice_ms = 4ull * 3600 * 1000;
  std::uint64_t expire_ms = 2ull * 86400 * 1000;
};

// Outbound delivery (SPEC §4). Timeouts are RFC 5321 §4.5.3.2's by default.
struct Delivery {
  bool enabled = true;      // false: only queue (a hold, like Postfix without qmgr)
  std::uint16_t port = 25;  // next-hop port for MX delivery
  std::string helo_name;    // empty: hostname
  std::uint64_t connect_timeout_ms = 30'000;
  std::uint64_t command_timeout_ms = 300'000;
  std::uint64_t data_timeout_ms = 600'000;
  std::uint32_t max_connections = 100;  // remote deliveries (and outbound SMTP connections) at once
  std::uint32_t max_per_destination = 20;
  // Local deliveries (Maildir, LMTP) at once: a pool apart from max_connections,
  // so slow or tarpitting remote hosts never hold local mail back.
  std::uint32_t max_local_deliveries = 20;
  // The most one delivery attempt of a message may take, over every next hop
  // it tries; unset: three times data_timeout.
  std::uint64_t attempt_timeout_ms = 3 * 600'000;
  bool starttls = true;  // opportunistic STARTTLS
  // Special-use addresses (RFC 6890) delivery may connect to when they come
  // from DNS or the envelope; [[route]] next hops are always allowed.
  std::vector<util::Cidr> private_networks;
};

// A next hop that replaces the MX lookup for a domain (a smarthost, like
// Postfix's transport_maps and relayhost): domain "*" matches every relayed domain.
struct Route {
  std::string domain;  // lower case, or "*"
  Endpoint next_hop;   // a host name here is looked up for A/AAAA, not MX
};

struct Dns {
  std::vector<std::string> servers;  // "127.0.0.1:5353"; empty: the system resolver
};

// [admin]: the admin HTTP listener (SPEC §5): /metrics, /api/…, the web
// queue viewer. Off unless address is set.
struct Admin {
  std::optional<Endpoint> address;   // "127.0.0.1:8025", "[::1]:8025"; port 0: any free port
  std::filesystem::path token_file;  // the bearer token of /api/ calls, created 0600 if missing
};

struct Log {
  std::filesystem::path directory;  // protocol and message tracking logs
  bool protocol = true;
};

struct Config {
  std::filesystem::path file;  // where it was loaded from
  std::string hostname;
  std::vector<Listener> listeners;
  Spool spool;
  std::vector<std::string> accepted_domains;  // lower case
  std::vector<Mailbox> mailboxes;
  std::vector<util::Cidr> relay_networks;
  Queue queue;
  Delivery delivery;
  std::vector<Route> routes;
  Dns dns;
  Log log;
  Cluster cluster;
  std::vector<DkimKey> dkim;
  SenderAuth sender_auth;
  Admin admin;
  unsigned threads = 0;  // event loops; 0 = one per core
  // The account tern serve runs as once it has bound its listeners, when it
  // is started as root (SPEC §2, DESIGN principle 7).
  std::string user = "tern";

  const Mailbox* find_mailbox(std::string_view address) const;
  bool accepts_domain(std::string_view domain) const;
  const Route* find_route(std::string_view domain) const;
  // The [[dkim]] key for a sender domain (exact match, lower case), or null.
  const DkimKey* find_dkim(std::string_view domain) const;
};

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, std::uint32_t line, const std::string& key,
              const std::string& message);
  std::string file;
  std::uint32_t line;
  std::string key;
};

Config load(const std::filesystem::path& file);
// The same, from text (for tests); relative paths resolve against base.
Config parse(const std::string& text, const std::filesystem::path& file_name);

}  // namespace tern::config
