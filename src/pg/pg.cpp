// The parts of the PostgreSQL client both connection kinds share: parameters,
// results, and messages about a connection that never show its password.
#include "pg/pg.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "util/text.h"

namespace tern::pg {

namespace {

std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  std::string out;
  bool line_start = false;
  for (char c : s) {
    if (c == '\n') {
      out += "; ";
      line_start = true;
    } else if (c == '\r' || (line_start && (c == ' ' || c == '\t'))) {
      continue;
    } else {
      out += c;
      line_start = false;
    }
  }
  return out;
}

// Element type OIDs (pg_type.dat): fixed since PostgreSQL 7.
constexpr std::uint32_t kBoolOid = 16, kByteaOid = 17, kInt8Oid = 20, kInt4Oid = 23, kTextOid = 25;

void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void put64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

// The header of a one-dimensional array of n elements (lower bound 1); an
// empty array has no dimension.
std::string array_header(std::uint32_t element, std::size_t n, bool has_null, std::size_t bytes) {
  std::string out;
  out.reserve(20 + bytes);
  put32(out, n == 0 ? 0 : 1);
  put32(out, has_null ? 1 : 0);
  put32(out, element);
  if (n > 0) {
    put32(out, static_cast<std::uint32_t>(n));
    put32(out, 1);
  }
  return out;
}

}  // namespace

Param bigint_array(const std::vector<std::int64_t>& values) {
  auto out = array_header(kInt8Oid, values.size(), false, values.size() * 12);
  for (auto v : values) {
    put32(out, 8);
    put64(out, static_cast<std::uint64_t>(v));
  }
  return bytes(std::move(out));
}

Param integer_array(const std::vector<std::int64_t>& values) {
  auto out = array_header(kInt4Oid, values.size(), false, values.size() * 8);
  for (auto v : values) {
    put32(out, 4);
    put32(out, static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
  }
  return bytes(std::move(out));
}

Param boolean_array(const std::vector<bool>& values) {
  auto out = array_header(kBoolOid, values.size(), false, values.size() * 5);
  for (bool v : values) {
    put32(out, 1);
    out += v ? '\1' : '\0';
  }
  return bytes(std::move(out));
}

Param bytea_array(const std::vector<std::string_view>& values) {
  std::size_t total = 0;
  for (auto v : values) total += 4 + v.size();
  auto out = array_header(kByteaOid, values.size(), false, total);
  for (auto v : values) {
    put32(out, static_cast<std::uint32_t>(v.size()));
    out.append(v);
  }
  return bytes(std::move(out));
}

Param text_array_binary(const std::vector<std::optional<std::string>>& values) {
  std::size_t total = 0;
  bool has_null = false;
  for (const auto& v : values) {
    total += 4 + (v ? v->size() : 0);
    has_null = has_null || !v;
  }
  auto out = array_header(kTextOid, values.size(), has_null, total);
  for (const auto& v : values) {
    if (!v) {
      put32(out, 0xffffffffu);  // -1: NULL
      continue;
    }
    auto t = valid_text(*v);
    put32(out, static_cast<std::uint32_t>(t.size()));
    out += t;
  }
  return bytes(std::move(out));
}

Param text_array(const std::vector<std::string>& values) {
  std::string s = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) s += ',';
    s += '"';
    for (char c : valid_text(values[i])) {
      if (c == '"' || c == '\\') s += '\\';
      s += c;
    }
    s += '"';
  }
  s += '}';
  return text(std::move(s));
}

Param int_array(const std::vector<std::int64_t>& values) {
  std::string s = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(values[i]);
  }
  s += '}';
  return text(std::move(s));
}

std::string valid_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    std::size_t n = util::utf8_sequence_length(s);
    if (n == 0 || s[0] == '\0') {
      out += '?';
      s.remove_prefix(1);
    } else {
      out.append(s.substr(0, n));
      s.remove_prefix(n);
    }
  }
  return out;
}

bool Result::ok() const {
  if (!r_) return false;
  auto st = PQresultStatus(r_.get());
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

std::int64_t Result::integer(int row, int col) const {
  auto v = raw(row, col);
  if (PQfformat(r_.get(), col) == 0) return std::stoll(std::string(v));
  std::uint64_t x = 0;
  for (unsigned char c : v) x = (x << 8) | c;
  // Sign-extend int2 and int4.
  if (v.size() == 2) return static_cast<std::int16_t>(x);
  if (v.size() == 4) return static_cast<std::int32_t>(x);
  return static_cast<std::int64_t>(x);
}

bool Result::boolean(int row, int col) const {
  auto v = raw(row, col);
  if (PQfformat(r_.get(), col) == 0) return v == "t";
  return !v.empty() && v[0] != 0;
}

std::int64_t Result::affected() const {
  const char* n = r_ ? PQcmdTuples(r_.get()) : "";
  return *n ? std::stoll(n) : 0;
}

std::string Result::error() const {
  if (!r_) return "no result";
  if (auto* primary = PQresultErrorField(r_.get(), PG_DIAG_MESSAGE_PRIMARY))
    return one_line(primary);
  std::string m = PQresultErrorMessage(r_.get());
  if (m.empty()) m = PQresStatus(PQresultStatus(r_.get()));
  return one_line(m);
}

std::string Result::sqlstate() const {
  const char* s = r_ ? PQresultErrorField(r_.get(), PG_DIAG_SQLSTATE) : nullptr;
  return s ? s : "";
}

const Result& Result::check() const {
  if (!ok()) throw QueryFailed(error(), sqlstate());
  return *this;
}

std::string describe(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    std::string why = err ? one_line(err) : "unreadable";
    PQfreemem(err);
    return "(a connection string libpq cannot read: " + why + ")";
  }
  std::string host, hostaddr, port, dbname;
  for (auto* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    if (std::strcmp(o->keyword, "host") == 0) host = o->val;
    if (std::strcmp(o->keyword, "hostaddr") == 0) hostaddr = o->val;
    if (std::strcmp(o->keyword, "port") == 0) port = o->val;
    if (std::strcmp(o->keyword, "dbname") == 0) dbname = o->val;
  }
  PQconninfoFree(opts);
  std::string out = "host=" + (host.empty() ? (hostaddr.empty() ? "(default)" : hostaddr) : host);
  if (!port.empty()) out += " port=" + port;
  if (!dbname.empty()) out += " dbname=" + dbname;
  return out;
}

std::string error_line(PGconn* conn) {
  if (!conn) return "out of memory";
  return one_line(PQerrorMessage(conn));
}

void quiet_notices(PGconn* conn) {
  PQsetNoticeProcessor(
      conn, [](void*, const char* message) { spdlog::debug("postgres: {}", one_line(message)); },
      nullptr);
}

}  // namespace tern::pg
