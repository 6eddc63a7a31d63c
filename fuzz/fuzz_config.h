// The configuration the session fuzzers run under: example.test accepted,
// kate@ with a password that never matches (no slow hashing), a relay network,
// one listener with short limits. Each fuzzer adjusts what it needs.
#pragma once

#include <cstdint>

#include "config/config.h"
#include "util/cidr.h"

namespace tern::fuzz {

inline config::Config base_config(std::uint64_t max_message_size) {
  config::Config c;
  c.hostname = "mx.example.test";
  c.accepted_domains = {"example.test"};
  config::Mailbox kate;
  kate.address = "kate@example.test";
  kate.maildir = "/nonexistent";
  kate.password = "{SHA512-CRYPT}$6$rounds=1000$fuzzsalt$";  // never matches: no slow hashing
  kate.aliases = {"katherine@example.test"};
  c.mailboxes.push_back(kate);
  c.relay_networks.push_back(*util::Cidr::parse("198.51.100.0/24"));
  config::Listener l;
  l.name = "fuzz";
  l.max_message_size = max_message_size;
  l.max_recipients = 100;
  l.command_timeout_ms = 1000;
  c.listeners.push_back(l);
  return c;
}

}  // namespace tern::fuzz
