// The sections of tern.toml (SPEC §2), one reader each, and the order they
// are read in: [domains] before [[mailbox]], whose addresses must be in them.
#include <arpa/inet.h>
#include <toml++/toml.h>

#include "config/table_reader.h"
#include "smtp/address.h"

namespace tern::config {

namespace fs = std::filesystem;

namespace {

void read_listener_fields(TableReader& r, const fs::path& base, Listener& l) {
  l.name = r.string("name").value_or("");
  if (l.name.empty()) r.fail("name", "every [[listener]] needs a name");
  auto address = r.string("address");
  if (!address) r.fail("address", "every [[listener]] needs an address such as \"127.0.0.1:25\"");
  auto ep = Endpoint::parse(*address);
  if (!ep) r.fail("address", "expected host:port, e.g. \"127.0.0.1:2525\" or \"[::1]:25\"");
  l.address = *ep;
  l.tls = r.choice<TlsMode>("tls", {{"none", TlsMode::kNone},
                                    {"starttls", TlsMode::kStartTls},
                                    {"implicit", TlsMode::kImplicit}})
              .value_or(TlsMode::kNone);
  l.auth = r.choice<AuthMode>("auth", {{"none", AuthMode::kNone},
                                       {"optional", AuthMode::kOptional},
                                       {"required", AuthMode::kRequired}})
               .value_or(AuthMode::kNone);
  if (auto v = r.size("max_message_size")) l.max_message_size = *v;
  if (auto v = r.integer("max_recipients", 100, 100000))
    l.max_recipients = static_cast<std::uint32_t>(*v);
  if (auto v = r.string("certificate")) l.certificate = resolve(base, *v);
  if (auto v = r.string("private_key")) l.private_key = resolve(base, *v);
  if (auto v = r.boolean("require_tls")) l.require_tls = *v;
  if (auto v = r.boolean("allow_plaintext_auth")) l.allow_plaintext_auth = *v;
  if (auto v = r.integer("max_errors", 1, 1000)) l.max_errors = static_cast<std::uint32_t>(*v);
  if (auto v = r.duration_ms("command_timeout")) l.command_timeout_ms = *v;
  if (auto v = r.duration_ms("data_timeout")) l.data_timeout_ms = *v;
  if (auto v = r.integer("max_connections", 1, 1000000))
    l.max_connections = static_cast<std::uint32_t>(*v);
  if (auto v = r.integer("max_connections_per_source", 1, 1000000))
    l.max_connections_per_source = static_cast<std::uint32_t>(*v);
  if (l.max_message_size == 0) r.fail("max_message_size", "must be more than 0");
  if (l.tls != TlsMode::kNone && (l.certificate.empty() || l.private_key.empty()))
    r.fail("tls", "tls = \"starttls\" or \"implicit\" needs certificate and private_key");
  if (l.require_tls && l.tls != TlsMode::kStartTls && l.tls != TlsMode::kImplicit)
    r.fail("require_tls", "require_tls needs tls = \"starttls\" or \"implicit\"");
}

void read_mailbox_fields(TableReader& r, const fs::path& base, Mailbox& m) {
  auto address = r.string("address");
  if (!address || !smtp::parse_address(*address))
    r.fail("address", "every [[mailbox]] needs an address such as \"kate@example.test\"");
  m.address = *address;
  if (auto v = r.string("maildir")) m.maildir = resolve(base, *v);
  if (auto v = r.string("lmtp")) {
    m.lmtp = Endpoint::parse(*v, 24);
    if (!m.lmtp) r.fail("lmtp", "expected host:port, e.g. \"127.0.0.1:24\"");
  }
  if (auto v = r.string("password")) m.password = *v;
  if (auto v = r.strings("aliases")) {
    for (const auto& a : *v)
      if (!smtp::parse_address(a)) r.fail("aliases", "\"" + a + "\" is not an address");
    m.aliases = *v;
  }
  if (m.maildir.empty() && !m.lmtp) r.fail("address", "a [[mailbox]] needs maildir or lmtp");
  if (!m.maildir.empty() && m.lmtp)
    r.fail("lmtp", "a [[mailbox]] has either maildir or lmtp, not both");
}

// [[listener]] (one table of the array): a receive connector
void read_listener(TableReader& lr, const fs::path& base, Config& c) {
  Listener l;
  read_listener_fields(lr, base, l);
  for (const auto& other : c.listeners) {
    if (other.name == l.name) lr.fail("name", "two listeners are called \"" + l.name + "\"");
    if (l.address.port != 0 && other.address.str() == l.address.str())
      lr.fail("address", "two listeners use " + l.address.str());
  }
  c.listeners.push_back(std::move(l));
}

// [spool]
void read_spool(TableReader& sr, const fs::path& base, Config& c) {
  c.spool.backend =
      sr.choice<std::string>("backend", {{"rocksdb", "rocksdb"}, {"postgres", "postgres"}})
          .value_or("rocksdb");
  if (auto v = sr.string("path")) c.spool.path = resolve(base, *v);
  if (auto v = sr.size("min_free")) c.spool.min_free = *v;
  if (auto v = sr.string("postgres")) c.spool.postgres = *v;
}

// [domains]
void read_domains(TableReader& dr, const fs::path& /*base*/, Config& c) {
  for (const auto& d : dr.strings("accepted").value_or(std::vector<std::string>{})) {
    if (!smtp::valid_domain(d, true)) dr.fail("accepted", "\"" + d + "\" is not a domain");
    c.accepted_domains.push_back(util::to_lower(d));
  }
}

// [[mailbox]] (one table of the array): an address of an accepted domain
void read_mailbox(TableReader& mr, const fs::path& base, Config& c) {
  Mailbox m;
  read_mailbox_fields(mr, base, m);
  if (!c.accepts_domain(smtp::parse_address(m.address)->domain_key()))
    mr.fail("address", m.address + " is not in [domains] accepted");
  for (const auto& a : m.aliases)
    if (c.find_mailbox(a)) mr.fail("aliases", a + " is listed twice");
  if (c.find_mailbox(m.address)) mr.fail("address", m.address + " is listed twice");
  c.mailboxes.push_back(std::move(m));
}

// [relay]
void read_relay(TableReader& rr, const fs::path& /*base*/, Config& c) {
  for (const auto& n : rr.strings("networks").value_or(std::vector<std::string>{})) {
    auto cidr = util::Cidr::parse(n);
    if (!cidr) rr.fail("networks", "\"" + n + "\" is not a network such as \"192.0.2.0/24\"");
    c.relay_networks.push_back(*cidr);
  }
}

// [queue]
void read_queue(TableReader& qr, const fs::path& /*base*/, Config& c) {
  if (auto v = qr.strings("retry")) {
    if (v->empty()) qr.fail("retry", "needs at least one wait, e.g. [\"1m\"]");
    c.queue.retry_ms.clear();
    for (const auto& s : *v) {
      auto ms = util::parse_duration_ms(s);
      if (!ms || *ms == 0) qr.fail("retry", "\"" + s + "\" is not a duration such as \"5m\"");
      c.queue.retry_ms.push_back(*ms);
    }
  }
  if (auto v = qr.duration_ms("delay_notice")) c.queue.delay_notice_ms = *v;
  if (auto v = qr.duration_ms("expire")) c.queue.expire_ms = *v;
}

// [delivery]
void read_delivery(TableReader& dr, const fs::path& /*base*/, Config& c) {
  auto& d = c.delivery;
  if (auto v = dr.boolean("enabled")) d.enabled = *v;
  if (auto v = dr.integer("port", 1, 65535)) d.port = static_cast<std::uint16_t>(*v);
  if (auto v = dr.string("helo_name")) {
    if (!smtp::valid_domain(*v, false)) dr.fail("helo_name", "not a valid host name");
    d.helo_name = *v;
  }
  if (auto v = dr.duration_ms("connect_timeout")) d.connect_timeout_ms = *v;
  if (auto v = dr.duration_ms("command_timeout")) d.command_timeout_ms = *v;
  if (auto v = dr.duration_ms("data_timeout")) d.data_timeout_ms = *v;
  if (auto v = dr.integer("max_connections", 1, 100000))
    d.max_connections = static_cast<std::uint32_t>(*v);
  if (auto v = dr.integer("max_per_destination", 1, 10000))
    d.max_per_destination = static_cast<std::uint32_t>(*v);
  if (auto v = dr.integer("max_local_deliveries", 1, 10000))
    d.max_local_deliveries = static_cast<std::uint32_t>(*v);
  if (auto v = dr.boolean("starttls")) d.starttls = *v;
  d.attempt_timeout_ms = 3 * d.data_timeout_ms;
  if (auto v = dr.duration_ms("attempt_timeout")) {
    if (*v < 1000) dr.fail("attempt_timeout", "must be at least 1s");
    d.attempt_timeout_ms = *v;
  }
  for (const auto& n : dr.strings("private_networks").value_or(std::vector<std::string>{})) {
    auto cidr = util::Cidr::parse(n);
    if (!cidr) dr.fail("private_networks", "\"" + n + "\" is not a network such as \"10.0.0.0/8\"");
    d.private_networks.push_back(*cidr);
  }
}

// [[route]] (one table of the array)
void read_route(TableReader& rr, const fs::path& /*base*/, Config& c) {
  Route route;
  auto domain = rr.string("domain");
  if (!domain || (*domain != "*" && !smtp::valid_domain(*domain, true)))
    rr.fail("domain", "every [[route]] needs a domain, or \"*\" for all relayed mail");
  route.domain = util::to_lower(*domain);
  auto hop = rr.string("next_hop");
  auto ep = hop ? Endpoint::parse(*hop, 25) : std::nullopt;
  if (!ep)
    rr.fail("next_hop",
            "expected host[:port], e.g. \"[127.0.0.1]:2526\" or \"smtp.example.net:587\"");
  route.next_hop = *ep;
  c.routes.push_back(std::move(route));
}

// [dns]
void read_dns(TableReader& dr, const fs::path& /*base*/, Config& c) {
  if (auto v = dr.strings("servers")) {
    for (const auto& s : *v)
      if (!Endpoint::parse(s, 53)) dr.fail("servers", "\"" + s + "\" is not host[:port]");
    c.dns.servers = *v;
  }
}

// [cluster]
void read_cluster(TableReader& cr, const fs::path& /*base*/, Config& c) {
  if (auto v = cr.string("node")) {
    if (v->empty() || v->size() > 64 || v->find_first_of(" \t\r\n") != std::string::npos)
      cr.fail("node", "not a node name (1 to 64 characters, no spaces)");
    c.cluster.node = *v;
  }
  if (auto v = cr.duration_ms("lease")) {
    if (*v < 2000) cr.fail("lease", "must be at least 2s");
    c.cluster.lease_ms = *v;
  }
}

// [[dkim]] (one table of the array)
void read_dkim(TableReader& kr, const fs::path& base, Config& c) {
  DkimKey k;
  auto domain = kr.string("domain");
  if (!domain || !smtp::valid_domain(*domain, true))
    kr.fail("domain", "every [[dkim]] needs the domain it signs for");
  k.domain = util::to_lower(*domain);
  auto selector = kr.string("selector");
  if (!selector || !smtp::valid_domain(*selector, false))
    kr.fail("selector", "every [[dkim]] needs a selector such as \"s1\"");
  k.selector = util::to_lower(*selector);
  auto key = kr.string("private_key");
  if (!key || key->empty()) kr.fail("private_key", "every [[dkim]] needs a private_key file");
  k.private_key = resolve(base, *key);
  if (c.find_dkim(k.domain)) kr.fail("domain", k.domain + " is listed twice");
  c.dkim.push_back(std::move(k));
}

// [sender_auth]
void read_sender_auth(TableReader& ar, const fs::path& /*base*/, Config& c) {
  if (auto v = ar.boolean("verify")) c.sender_auth.verify = *v;
  if (auto v = ar.boolean("dmarc_reject")) c.sender_auth.dmarc_reject = *v;
}

// [admin]
void read_admin(TableReader& ar, const fs::path& base, Config& c) {
  if (auto v = ar.string("address")) {
    auto ep = Endpoint::parse(*v);
    in6_addr ip{};
    if (!ep || (inet_pton(AF_INET, ep->host.c_str(), &ip) != 1 &&
                inet_pton(AF_INET6, ep->host.c_str(), &ip) != 1))
      ar.fail("address",
              "expected an IP address and a port (host:port), e.g. \"127.0.0.1:8025\" or "
              "\"[::1]:8025\"");
    c.admin.address = *ep;
  }
  if (auto v = ar.string("token_file")) {
    if (v->empty()) ar.fail("token_file", "must name a file");
    c.admin.token_file = resolve(base, *v);
  }
}

// [log]
void read_log(TableReader& lr, const fs::path& base, Config& c) {
  if (auto v = lr.string("directory")) c.log.directory = resolve(base, *v);
  if (auto v = lr.boolean("protocol")) c.log.protocol = *v;
}

}  // namespace

Config parse_table(const toml::table& root, const fs::path& file) {
  const std::string file_name = file.string();
  const fs::path base = file.has_parent_path() ? file.parent_path() : fs::path(".");
  Config c;
  c.file = file;
  c.spool.path = resolve(base, "../var/spool");
  c.log.directory = resolve(base, "../var/log");
  c.admin.token_file = resolve(base, "var/admin.token");
  TableReader r(root, "", file_name);
  c.hostname = r.string("hostname").value_or(system_hostname());
  if (!smtp::valid_domain(c.hostname, false)) r.fail("hostname", "not a valid host name");
  if (auto v = r.integer("threads", 0, 256)) c.threads = static_cast<unsigned>(*v);
  if (auto v = r.string("user")) {
    if (v->empty() || v->find_first_of(" \t:/") != std::string::npos)
      r.fail("user", "not a user name");
    c.user = *v;
  }

  each_table(r, "listener", file_name,
             [&](TableReader& t, std::size_t) { read_listener(t, base, c); });
  sub_table(r, "spool", file_name, [&](TableReader& t) { read_spool(t, base, c); });
  sub_table(r, "domains", file_name, [&](TableReader& t) { read_domains(t, base, c); });
  each_table(r, "mailbox", file_name,
             [&](TableReader& t, std::size_t) { read_mailbox(t, base, c); });
  sub_table(r, "relay", file_name, [&](TableReader& t) { read_relay(t, base, c); });
  sub_table(r, "queue", file_name, [&](TableReader& t) { read_queue(t, base, c); });
  sub_table(r, "delivery", file_name, [&](TableReader& t) { read_delivery(t, base, c); });
  each_table(r, "route", file_name, [&](TableReader& t, std::size_t) { read_route(t, base, c); });
  sub_table(r, "dns", file_name, [&](TableReader& t) { read_dns(t, base, c); });
  sub_table(r, "log", file_name, [&](TableReader& t) { read_log(t, base, c); });
  sub_table(r, "cluster", file_name, [&](TableReader& t) { read_cluster(t, base, c); });
  each_table(r, "dkim", file_name, [&](TableReader& t, std::size_t) { read_dkim(t, base, c); });
  sub_table(r, "sender_auth", file_name, [&](TableReader& t) { read_sender_auth(t, base, c); });
  sub_table(r, "admin", file_name, [&](TableReader& t) { read_admin(t, base, c); });
  r.finish();

  // The machine's name, not the configured one: nodes of an MX pool often
  // share one configuration, and two nodes of one name would free each
  // other's leases at start.
  if (c.cluster.node.empty()) c.cluster.node = system_hostname();
  if (c.spool.backend == "postgres" && c.spool.postgres.empty())
    throw ConfigError(file_name, 1, "spool",
                      "backend = \"postgres\" needs postgres = \"<libpq connection string>\"");
  if (c.listeners.empty())
    throw ConfigError(file_name, 1, "listener", "at least one [[listener]] is needed");
  return c;
}

}  // namespace tern::config
