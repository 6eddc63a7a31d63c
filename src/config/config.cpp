#include "config/config.h"

#include <unistd.h>

#include <toml++/toml.h>
#include <fstream>
#include <set>
#include <sstream>

#include "smtp/address.h"
#include "util/text.h"

namespace tern::config {

namespace fs = std::filesystem;

ConfigError::ConfigError(const std::string& f, std::uint32_t l, const std::string& k,
                         const std::string& message)
    : std::runtime_error(f + ":" + std::to_string(l) + ": " + (k.empty() ? "" : k + ": ") +
                         message),
      file(f),
      line(l),
      key(k) {}

std::string Endpoint::str() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<Endpoint> Endpoint::parse(std::string_view text, std::uint16_t default_port) {
  Endpoint e;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    e.host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) colon = std::string_view::npos;
    e.host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) port_text = text.substr(colon + 1);
  }
  if (e.host.empty()) return std::nullopt;
  if (port_text.empty()) {
    if (default_port == 0 && text.find(':') == std::string_view::npos) return std::nullopt;
    e.port = default_port;
  } else {
    auto p = util::parse_uint(port_text);
    if (!p || *p > 65535) return std::nullopt;
    e.port = static_cast<std::uint16_t>(*p);
  }
  return e;
}

const Mailbox* Config::find_mailbox(std::string_view address) const {
  std::string key = util::to_lower(address);
  for (const auto& m : mailboxes) {
    if (util::to_lower(m.address) == key) return &m;
    for (const auto& a : m.aliases)
      if (util::to_lower(a) == key) return &m;
  }
  return nullptr;
}

const Route* Config::find_route(std::string_view domain) const {
  const Route* wildcard = nullptr;
  for (const auto& r : routes) {
    if (util::iequals(r.domain, domain)) return &r;
    if (r.domain == "*") wildcard = &r;
  }
  return wildcard;
}

bool Config::accepts_domain(std::string_view domain) const {
  for (const auto& d : accepted_domains)
    if (util::iequals(d, domain)) return true;
  return false;
}

namespace {

// Reads one TOML table, remembering which keys were used, so that what is left
// over at the end can be reported as unknown.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix, const std::string& file)
      : table_(table), prefix_(std::move(prefix)), file_(file) {}

  [[noreturn]] void fail(std::string_view key, const std::string& message) const {
    const toml::node* node = table_.get(key);
    auto line = node ? node->source().begin.line : table_.source().begin.line;
    throw ConfigError(file_, line, full(key), message);
  }

  std::string full(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

  const toml::node* get(std::string_view key) {
    used_.insert(std::string(key));
    return table_.get(key);
  }

  std::optional<std::string> string(std::string_view key) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail(key, "expected a string");
    return std::string(*n->as_string());
  }

  std::optional<bool> boolean(std::string_view key) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_boolean()) fail(key, "expected true or false");
    return n->as_boolean()->get();
  }

  std::optional<std::uint64_t> integer(std::string_view key, std::uint64_t min, std::uint64_t max) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_integer()) fail(key, "expected a whole number");
    std::int64_t v = n->as_integer()->get();
    if (v < 0 || static_cast<std::uint64_t>(v) < min || static_cast<std::uint64_t>(v) > max)
      fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return static_cast<std::uint64_t>(v);
  }

  // A size: a number of bytes, or a string such as "36MB".
  std::optional<std::uint64_t> size(std::string_view key) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (n->is_integer() && n->as_integer()->get() >= 0)
      return static_cast<std::uint64_t>(n->as_integer()->get());
    if (n->is_string())
      if (auto v = util::parse_size(n->as_string()->get())) return v;
    fail(key, "expected a size such as 37748736 or \"36MB\"");
  }

  std::optional<std::uint64_t> duration_ms(std::string_view key) {
    auto s = string(key);
    if (!s) return std::nullopt;
    auto v = util::parse_duration_ms(*s);
    if (!v) fail(key, "expected a duration such as \"30s\", \"5m\", \"4h\" or \"2d\"");
    return v;
  }

  std::optional<std::vector<std::string>> strings(std::string_view key) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    const toml::array* arr = n->as_array();
    if (!arr) fail(key, "expected a list of strings");
    std::vector<std::string> out;
    for (const auto& item : *arr) {
      if (!item.is_string()) fail(key, "expected a list of strings");
      out.emplace_back(*item.as_string());
    }
    return out;
  }

  template <typename E>
  std::optional<E> choice(std::string_view key,
                          std::initializer_list<std::pair<std::string_view, E>> options) {
    auto s = string(key);
    if (!s) return std::nullopt;
    std::string names;
    for (const auto& [name, value] : options) {
      if (*s == name) return value;
      names += (names.empty() ? "" : ", ") + std::string(name);
    }
    fail(key, "must be one of " + names + " (got \"" + *s + "\")");
  }

  void finish() const {
    for (const auto& [k, v] : table_) {
      if (!used_.count(std::string(k.str()))) {
        throw ConfigError(file_,
                          k.source().begin.line ? k.source().begin.line : v.source().begin.line,
                          full(k.str()), "unknown key");
      }
    }
  }

  const toml::table& table() const { return table_; }

 private:
  const toml::table& table_;
  std::string prefix_;
  const std::string& file_;
  std::set<std::string> used_;
};

fs::path resolve(const fs::path& base, const std::string& p) {
  if (p.empty()) return {};
  fs::path path(p);
  return path.is_absolute() ? path : (base / path).lexically_normal();
}

std::string system_hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

// Calls fn(reader, index) for each table of an array of tables ("[[listener]]").
template <typename Fn>
void each_table(TableReader& parent, std::string_view key, const std::string& file, Fn fn) {
  const toml::node* n = parent.get(key);
  if (!n) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables())
    parent.fail(key, "expected [[" + std::string(key) + "]] tables");
  std::size_t i = 0;
  for (const auto& item : *arr) {
    TableReader r(*item.as_table(), std::string(key) + "[" + std::to_string(i) + "]", file);
    fn(r, i++);
    r.finish();
  }
}

template <typename Fn>
void sub_table(TableReader& parent, std::string_view key, const std::string& file, Fn fn) {
  const toml::node* n = parent.get(key);
  if (!n) return;
  if (!n->is_table()) parent.fail(key, "expected a [" + std::string(key) + "] table");
  TableReader r(*n->as_table(), std::string(key), file);
  fn(r);
  r.finish();
}

void read_listener(TableReader& r, const fs::path& base, Listener& l) {
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
  if (auto v = r.integer("max_connections", 1, 1000000))
    l.max_connections = static_cast<std::uint32_t>(*v);
  if (l.max_message_size == 0) r.fail("max_message_size", "must be more than 0");
  if (l.tls != TlsMode::kNone && (l.certificate.empty() || l.private_key.empty()))
    r.fail("tls", "tls = \"starttls\" or \"implicit\" needs certificate and private_key");
  if (l.require_tls && l.tls != TlsMode::kStartTls && l.tls != TlsMode::kImplicit)
    r.fail("require_tls", "require_tls needs tls = \"starttls\" or \"implicit\"");
}

void read_mailbox(TableReader& r, const fs::path& base, Mailbox& m) {
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

Config parse_table(const toml::table& root, const fs::path& file) {
  const std::string file_name = file.string();
  const fs::path base = file.has_parent_path() ? file.parent_path() : fs::path(".");
  Config c;
  c.file = file;
  c.spool.path = resolve(base, "../var/spool");
  c.log.directory = resolve(base, "../var/log");
  TableReader r(root, "", file_name);
  c.hostname = r.string("hostname").value_or(system_hostname());
  if (!smtp::valid_domain(c.hostname, false)) r.fail("hostname", "not a valid host name");
  if (auto v = r.integer("threads", 0, 256)) c.threads = static_cast<unsigned>(*v);

  std::set<std::string> names, addresses;
  each_table(r, "listener", file_name, [&](TableReader& lr, std::size_t) {
    Listener l;
    read_listener(lr, base, l);
    if (!names.insert(l.name).second)
      lr.fail("name", "two listeners are called \"" + l.name + "\"");
    if (l.address.port != 0 && !addresses.insert(l.address.str()).second)
      lr.fail("address", "two listeners use " + l.address.str());
    c.listeners.push_back(std::move(l));
  });
  sub_table(r, "spool", file_name, [&](TableReader& sr) {
    c.spool.backend =
        sr.choice<std::string>("backend", {{"rocksdb", "rocksdb"}, {"postgres", "postgres"}})
            .value_or("rocksdb");
    if (auto v = sr.string("path")) c.spool.path = resolve(base, *v);
    if (auto v = sr.size("min_free")) c.spool.min_free = *v;
    if (auto v = sr.string("postgres")) c.spool.postgres = *v;
  });
  sub_table(r, "domains", file_name, [&](TableReader& dr) {
    for (const auto& d : dr.strings("accepted").value_or(std::vector<std::string>{})) {
      if (!smtp::valid_domain(d, true)) dr.fail("accepted", "\"" + d + "\" is not a domain");
      c.accepted_domains.push_back(util::to_lower(d));
    }
  });
  std::set<std::string> mailbox_addresses;
  each_table(r, "mailbox", file_name, [&](TableReader& mr, std::size_t) {
    Mailbox m;
    read_mailbox(mr, base, m);
    if (!c.accepts_domain(smtp::parse_address(m.address)->domain_key()))
      mr.fail("address", m.address + " is not in [domains] accepted");
    for (const auto& a : m.aliases)
      if (!mailbox_addresses.insert(util::to_lower(a)).second)
        mr.fail("aliases", a + " is listed twice");
    if (!mailbox_addresses.insert(util::to_lower(m.address)).second)
      mr.fail("address", m.address + " is listed twice");
    c.mailboxes.push_back(std::move(m));
  });
  sub_table(r, "relay", file_name, [&](TableReader& rr) {
    for (const auto& n : rr.strings("networks").value_or(std::vector<std::string>{})) {
      auto cidr = util::Cidr::parse(n);
      if (!cidr) rr.fail("networks", "\"" + n + "\" is not a network such as \"192.0.2.0/24\"");
      c.relay_networks.push_back(*cidr);
    }
  });
  sub_table(r, "queue", file_name, [&](TableReader& qr) {
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
  });
  sub_table(r, "delivery", file_name, [&](TableReader& dr) {
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
    if (auto v = dr.boolean("starttls")) d.starttls = *v;
  });
  each_table(r, "route", file_name, [&](TableReader& rr, std::size_t) {
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
  });
  sub_table(r, "dns", file_name, [&](TableReader& dr) {
    if (auto v = dr.strings("servers")) {
      for (const auto& s : *v)
        if (!Endpoint::parse(s, 53)) dr.fail("servers", "\"" + s + "\" is not host[:port]");
      c.dns.servers = *v;
    }
  });
  sub_table(r, "log", file_name, [&](TableReader& lr) {
    if (auto v = lr.string("directory")) c.log.directory = resolve(base, *v);
    if (auto v = lr.boolean("protocol")) c.log.protocol = *v;
  });
  r.finish();

  if (c.listeners.empty())
    throw ConfigError(file_name, 1, "listener", "at least one [[listener]] is needed");
  return c;
}

}  // namespace

Config parse(const std::string& text, const fs::path& file) {
  try {
    toml::table root = toml::parse(text, file.string());
    return parse_table(root, file);
  } catch (const toml::parse_error& e) {
    throw ConfigError(file.string(), e.source().begin.line, "", std::string(e.description()));
  }
}

Config load(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(file.string(), 0, "", "cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file);
}

}  // namespace tern::config
