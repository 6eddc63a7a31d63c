#include "config/config.h"

#include <unistd.h>

#include <toml++/toml.h>

#include <fstream>
#include <set>
#include <sstream>
#include "config/table_reader.h"

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

std::shared_ptr<const std::vector<Mailbox>> Config::mailbox_table() const {
  if (live_mailboxes) return live_mailboxes->snapshot();
  // Not loaded through load()/parse() (a Config built by hand): the vector
  // itself, owned by this Config.
  return {std::shared_ptr<const void>{}, &mailboxes};
}

std::shared_ptr<const Mailbox> Config::find_mailbox(std::string_view address) const {
  std::string key = util::to_lower(address);
  auto table = mailbox_table();
  for (const auto& m : *table) {
    if (util::to_lower(m.address) == key) return {table, &m};
    for (const auto& a : m.aliases)
      if (util::to_lower(a) == key) return {table, &m};
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

const DkimKey* Config::find_dkim(std::string_view domain) const {
  for (const auto& k : dkim)
    if (util::iequals(k.domain, domain)) return &k;
  return nullptr;
}

bool Config::accepts_domain(std::string_view domain) const {
  for (const auto& d : accepted_domains)
    if (util::iequals(d, domain)) return true;
  return false;
}

Config parse(const std::string& text, const fs::path& file) {
  try {
    toml::table root = toml::parse(text, file.string());
    Config c = parse_table(root, file);
    c.live_mailboxes = std::make_shared<LiveMailboxes>(c.mailboxes);
    return c;
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
