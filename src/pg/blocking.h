// A blocking PostgreSQL connection for callers off the event loops (the queue
// tools, the spool's reads and streamed parts, the schema at start).
// Contract: thread-safe (one statement at a time, behind a mutex); connects
// on first use and again after a loss; throws ConnectionLost when the
// database cannot be reached, QueryFailed when a statement fails.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "pg/pg.h"

namespace tern::pg {

class BlockingConnection {
 public:
  // settings: statements run after each connect (e.g. "SET synchronous_commit = off").
  explicit BlockingConnection(std::string conninfo, std::vector<std::string> settings = {});
  ~BlockingConnection();
  BlockingConnection(const BlockingConnection&) = delete;
  BlockingConnection& operator=(const BlockingConnection&) = delete;

  // Connects now if not connected (throws ConnectionLost).
  void connect();
  // Runs one statement; throws QueryFailed if it fails.
  Result run(const Query& q);
  // Runs several statements in one transaction (BEGIN … COMMIT), the result
  // of each; fn may run statements of its own through the connection it gets.
  template <typename Fn>
  auto transaction(Fn&& fn) {
    std::lock_guard lock(mu_);
    ensure();
    exec_locked({"BEGIN", {}, false});
    try {
      auto r = fn([this](const Query& q) { return exec_locked(q); });
      exec_locked({"COMMIT", {}, false});
      return r;
    } catch (...) {
      if (conn_ && PQstatus(conn_) == CONNECTION_OK) PQclear(PQexec(conn_, "ROLLBACK"));
      throw;
    }
  }

 private:
  void ensure();
  Result exec_locked(const Query& q);

  std::string conninfo_;
  std::vector<std::string> settings_;
  std::mutex mu_;
  PGconn* conn_ = nullptr;
};

}  // namespace tern::pg
