// Configuration: the shipped file loads; every mistake is refused with the
// file, the line and the key (SPEC §1).
#include <gtest/gtest.h>

#include "config/config.h"

namespace tern::config {
namespace {

std::string base(std::string_view extra) {
  return std::string(
             "hostname = \"mx.example.test\"\n[[listener]]\nname = \"a\"\naddress = "
             "\"127.0.0.1:2525\"\n") +
         std::string(extra);
}

ConfigError error_of(const std::string& text) {
  try {
    parse(text, "/etc/tern/tern.toml");
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return ConfigError("", 0, "", "");
}

TEST(Config, ShippedFileLoads) {
  auto c = load(TERN_SOURCE_DIR "/etc/tern.toml");
  EXPECT_EQ(c.hostname, "mail.example.test");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].address.str(), "127.0.0.1:2525");
  EXPECT_EQ(c.listeners[1].address.port, 2587);
  EXPECT_EQ(c.listeners[1].auth, AuthMode::kRequired);
  EXPECT_EQ(c.spool.backend, "rocksdb");
  EXPECT_TRUE(c.spool.path.is_absolute());
  EXPECT_EQ(c.spool.path.filename(), "spool");
  EXPECT_NE(c.find_mailbox("KATE@example.test"), nullptr);
  EXPECT_EQ(c.queue.retry_ms.size(), 5u);
  EXPECT_EQ(c.queue.expire_ms, 2ull * 86400 * 1000);
}

TEST(Config, RelativePathsFollowTheFile) {
  auto c = parse(base("[spool]\npath = \"q\"\n"), "/srv/tern/etc/tern.toml");
  EXPECT_EQ(c.spool.path, "/srv/tern/etc/q");
}

TEST(Config, Defaults) {
  auto c = parse(base(""), "/x/tern.toml");
  EXPECT_EQ(c.listeners[0].max_message_size, 37748736u);
  EXPECT_EQ(c.listeners[0].max_recipients, 200u);
  EXPECT_EQ(c.listeners[0].max_errors, 10u);
  EXPECT_EQ(c.listeners[0].command_timeout_ms, 300000u);
  EXPECT_EQ(c.listeners[0].max_connections, 20000u);
  EXPECT_EQ(c.listeners[0].max_connections_per_source, 20u);  // SPEC §2, as Exchange
}

TEST(Config, ConnectionLimits) {
  auto c = parse(base("max_connections = 500\nmax_connections_per_source = 50\n"), "/x/tern.toml");
  EXPECT_EQ(c.listeners[0].max_connections, 500u);
  EXPECT_EQ(c.listeners[0].max_connections_per_source, 50u);
}

TEST(Config, DeliveryLimitsAndPrivateNetworks) {
  auto c = parse(base(""), "/x/tern.toml");
  EXPECT_TRUE(c.delivery.private_networks.empty());  // SPEC §2: none by default
  EXPECT_EQ(c.delivery.attempt_timeout_ms, 3u * c.delivery.data_timeout_ms);
  EXPECT_EQ(c.delivery.max_local_deliveries, 20u);
  c = parse(base("[delivery]\ndata_timeout = \"5s\"\nmax_local_deliveries = 3\n"
                 "private_networks = [\"127.0.0.0/8\", \"::1/128\"]\n"),
            "/x/tern.toml");
  EXPECT_EQ(c.delivery.attempt_timeout_ms, 15'000u);
  EXPECT_EQ(c.delivery.max_local_deliveries, 3u);
  ASSERT_EQ(c.delivery.private_networks.size(), 2u);
  EXPECT_EQ(c.delivery.private_networks[1].text, "::1/128");
  c = parse(base("[delivery]\nattempt_timeout = \"20m\"\n"), "/x/tern.toml");
  EXPECT_EQ(c.delivery.attempt_timeout_ms, 1'200'000u);
}

TEST(Config, IPv6Listener) {
  auto c = parse("[[listener]]\nname = \"v6\"\naddress = \"[::1]:25\"\n", "/x/tern.toml");
  EXPECT_EQ(c.listeners[0].address.host, "::1");
  EXPECT_EQ(c.listeners[0].address.str(), "[::1]:25");
}

struct Bad {
  std::string text;
  std::uint32_t line;
  const char* key;
  const char* says;
};

TEST(Config, ErrorsNameFileLineAndKey) {
  const Bad cases[] = {
      {base("tls = \"tsl\"\n"), 5, "listener[0].tls", "must be one of none, starttls, implicit"},
      {base("max_recipients = \"many\"\n"), 5, "listener[0].max_recipients", "whole number"},
      {base("max_connections_per_source = 0\n"), 5, "listener[0].max_connections_per_source",
       "between 1 and 1000000"},
      {base("max_connections_per_source = \"20\"\n"), 5, "listener[0].max_connections_per_source",
       "whole number"},
      {base("colour = \"blue\"\n"), 5, "listener[0].colour", "unknown key"},
      {base("[queue]\nretry = [\"5 minutes\"]\n"), 6, "queue.retry", "duration"},
      {base("[relay]\nnetworks = [\"10.0.0.0/33\"]\n"), 6, "relay.networks", "network"},
      {base("[delivery]\nport = 25\nprivate_networks = [\"127.0.0.0/8\", \"loopback\"]\n"), 7,
       "delivery.private_networks", "network"},
      {base("[delivery]\nattempt_timeout = \"500ms\"\n"), 6, "delivery.attempt_timeout",
       "at least 1s"},
      {base("[delivery]\nmax_local_deliveries = 0\n"), 6, "delivery.max_local_deliveries",
       "between 1 and"},
      {base("[domains]\naccepted = [\"example.test\"]\n[[mailbox]]\naddress = "
            "\"kate@other.test\"\nmaildir = \"m\"\n"),
       8, "mailbox[0].address", "accepted"},
      {"hostname = \"a.b\"\n[[listener]]\nname = \"x\"\naddress = \"nowhere\"\n", 4,
       "listener[0].address", "host:port"},
      {base("tls = \"starttls\"\n"), 5, "listener[0].tls", "certificate"},
      {base("[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:2526\"\n"), 6, "listener[1].name",
       "two listeners"},
      {base("[spool]\nbackend = \"mysql\"\n"), 6, "spool.backend", "rocksdb, postgres"},
      {base("[admin]\naddress = \"localhost\"\n"), 6, "admin.address", "host:port"},
      {base("[admin]\naddress = \"[::1:8025\"\n"), 6, "admin.address", "host:port"},
      {base("[admin]\naddress = 8025\n"), 6, "admin.address", "expected a string"},
      {base("[admin]\naddress = \"localhost:8025\"\n"), 6, "admin.address", "IP address"},
      {base("[admin]\naddress = \"127.0.0.1:80250\"\n"), 6, "admin.address", "host:port"},
      {base("[admin]\naddress = \"127.0.0.1:8025\"\ntoken_file = \"\"\n"), 7, "admin.token_file",
       "must name a file"},
      {base("[admin]\ntoken = \"secret\"\n"), 6, "admin.token", "unknown key"},
      {"hostname = \"a.b\"\n", 1, "listener", "at least one"},
      {"hostname = [\n", 1, "", ""},
  };
  for (const auto& c : cases) {
    auto e = error_of(c.text);
    EXPECT_EQ(e.file, "/etc/tern/tern.toml");
    EXPECT_EQ(e.line, c.line) << c.text;
    EXPECT_EQ(e.key, c.key) << c.text;
    EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("/etc/tern/tern.toml:" + std::to_string(c.line) + ":", 0),
              0u)
        << e.what();
  }
}

TEST(Config, Admin) {
  auto off = parse(base(""), "/x/tern.toml");
  EXPECT_FALSE(off.admin.address);  // off unless configured
  EXPECT_EQ(off.admin.token_file, "/x/var/admin.token");
  auto on = parse(base("[admin]\naddress = \"[::1]:8025\"\ntoken_file = \"t/admin.token\"\n"),
                  "/x/tern.toml");
  ASSERT_TRUE(on.admin.address);
  EXPECT_EQ(on.admin.address->host, "::1");
  EXPECT_EQ(on.admin.address->port, 8025);
  EXPECT_EQ(on.admin.token_file, "/x/t/admin.token");
  // [admin] without address: still off
  EXPECT_FALSE(parse(base("[admin]\ntoken_file = \"a\"\n"), "/x/tern.toml").admin.address);
}

TEST(Config, MissingFile) {
  try {
    load("/nonexistent/tern.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tern.toml"), std::string::npos);
  }
}

}  // namespace
}  // namespace tern::config
