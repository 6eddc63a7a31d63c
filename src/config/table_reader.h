// Reading tern's TOML configuration table by table: typed getters that
// refuse a wrong value with the file, the line and the key, and remember which
// keys were used so that anything left over is reported as unknown. Internal
// to src/config/.
#pragma once

#include <toml++/toml.h>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "util/text.h"

namespace tern::config {

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

inline std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  if (p.empty()) return {};
  std::filesystem::path path(p);
  return path.is_absolute() ? path : (base / path).lexically_normal();
}

inline std::string system_hostname() {
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

// The whole file, [sections] in order (config_sections.cpp).
Config parse_table(const toml::table& root, const std::filesystem::path& file);

}  // namespace tern::config
