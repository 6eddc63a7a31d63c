// A small PostgreSQL client on libpq, for the shared spool (SPEC §6): queries,
// results and the errors both connection kinds share. Connection (async.h) runs
// on an Asio event loop; BlockingConnection (blocking.h) is for callers that may block.
// Contract: parameters are sent as given, text or binary (bytea); results keep
// libpq's PGresult, read through the helpers below in either format.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tern::pg {

// The connection is gone (or never came): what was in flight has an unknown
// outcome. Messages are one line and never contain a password.
class ConnectionLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The server refused a statement (SQL error); the connection is still usable.
class QueryFailed : public std::runtime_error {
 public:
  QueryFailed(const std::string& what, std::string sqlstate)
      : std::runtime_error(what), sqlstate_(std::move(sqlstate)) {}
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

struct Param {
  std::optional<std::string> value;  // nullopt: SQL NULL
  bool binary = false;               // raw bytes (bytea); else text
};
inline Param text(std::string v) {
  return {std::move(v), false};
}
inline Param bytes(std::string v) {
  return {std::move(v), true};
}
inline Param null() {
  return {};
}
inline Param number(std::int64_t v) {
  return {std::to_string(v), false};
}
// A text array literal ('{"a","b"}') of strings, each quoted and escaped.
Param text_array(const std::vector<std::string>& values);
Param int_array(const std::vector<std::int64_t>& values);

// Arrays in PostgreSQL's binary array format (what array_recv reads), for a
// parameter cast to the same array type in the statement ($1::bigint[] …):
// nothing is quoted or escaped, bytea goes as it is. Text elements are made
// valid_text(); a nullopt element is SQL NULL.
Param bigint_array(const std::vector<std::int64_t>& values);
Param integer_array(const std::vector<std::int64_t>& values);  // int4: values must fit
Param boolean_array(const std::vector<bool>& values);
Param bytea_array(const std::vector<std::string_view>& values);
Param text_array_binary(const std::vector<std::optional<std::string>>& values);
// Text the database accepts in a text column: invalid UTF-8 and NUL become '?'.
std::string valid_text(std::string_view s);

struct Query {
  std::string sql;
  std::vector<Param> params;
  bool binary_results = false;  // results in binary (bytea as raw bytes)
};

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
// One statement's result. ok(): it succeeded (command or rows).
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* r) : r_(r) {}
  PGresult* get() const { return r_.get(); }
  bool ok() const;
  int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
  bool is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view raw(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col),
            static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
  }
  // Integers and booleans in text or binary format (int2/4/8, bool).
  std::int64_t integer(int row, int col) const;
  bool boolean(int row, int col) const;
  std::string string(int row, int col) const { return std::string(raw(row, col)); }
  // Rows a command touched (UPDATE, DELETE, INSERT).
  std::int64_t affected() const;
  std::string error() const;     // one line
  std::string sqlstate() const;  // "" when none
  // Throws QueryFailed unless ok().
  const Result& check() const;

 private:
  std::unique_ptr<PGresult, ResultDeleter> r_;
};

// conninfo's hosts and ports, for messages ("host=db1,db2 port=5432"); never
// the password.
std::string describe(const std::string& conninfo);
// The connection's last error as one line.
std::string error_line(PGconn* conn);
// The server's notices (e.g. "already exists, skipping") go to the debug log,
// not to stderr.
void quiet_notices(PGconn* conn);

}  // namespace tern::pg
