// The blocking PostgreSQL connection (blocking.h): PQconnectdbParams and
// PQexecParams behind a mutex, reconnecting on the next use after a loss.
#include "pg/blocking.h"

namespace tern::pg {

BlockingConnection::BlockingConnection(std::string conninfo, std::vector<std::string> settings)
    : conninfo_(std::move(conninfo)), settings_(std::move(settings)) {}

BlockingConnection::~BlockingConnection() {
  if (conn_) PQfinish(conn_);
}

void BlockingConnection::connect() {
  std::lock_guard lock(mu_);
  ensure();
}

// Under mu_.
void BlockingConnection::ensure() {
  if (conn_ && PQstatus(conn_) == CONNECTION_OK) return;
  if (conn_) PQfinish(conn_);
  // connect_timeout bounds an unreachable host; the conninfo's own value wins.
  const char* keywords[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {"10", conninfo_.c_str(), nullptr};
  conn_ = PQconnectdbParams(keywords, values, 1);
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    std::string why = error_line(conn_);
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
    throw ConnectionLost("cannot connect to " + describe(conninfo_) + ": " + why);
  }
  quiet_notices(conn_);
  for (const auto& s : settings_) exec_locked({s, {}, false}).check();
}

Result BlockingConnection::run(const Query& q) {
  std::lock_guard lock(mu_);
  ensure();
  return exec_locked(q);
}

// Under mu_, connected: a failure of the connection throws ConnectionLost,
// of the statement QueryFailed.
Result BlockingConnection::exec_locked(const Query& q) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (const auto& p : q.params) {
    values.push_back(p.value ? p.value->data() : nullptr);
    lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
    formats.push_back(p.binary ? 1 : 0);
  }
  Result r(PQexecParams(conn_, q.sql.c_str(), static_cast<int>(values.size()), nullptr,
                        values.data(), lengths.data(), formats.data(), q.binary_results ? 1 : 0));
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string why = r.get() ? r.error() : error_line(conn_);
    PQfinish(conn_);
    conn_ = nullptr;
    throw ConnectionLost("lost the connection to " + describe(conninfo_) + ": " + why);
  }
  r.check();
  return r;
}

}  // namespace tern::pg
