// An asynchronous PostgreSQL connection driven by an Asio event loop: libpq's
// nonblocking API (PQconnectStart/PQconnectPoll, pipeline mode, PQconsumeInput,
// PQnotifies) woken through PQsocket() and stream_descriptor::async_wait.
// Contract: one coroutine at a time uses a Connection, on its executor's
// thread. libpq owns the socket: the descriptor is released, never closed.
// Any loss of the connection throws ConnectionLost and leaves it closed;
// connect() again (libpq's multi-host rules then find the current primary).
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "net/awaitable.h"
#include "pg/pg.h"

namespace tern::pg {

class Connection {
 public:
  // timeout bounds connect(); libpq enforces connect_timeout only when it blocks.
  Connection(asio::any_io_executor executor, std::string conninfo,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects (closing any connection first) and enters pipeline mode; throws
  // ConnectionLost naming the hosts (describe()) and libpq's reason.
  net::awaitable<void> connect();
  bool connected() const;
  void close();

  // One round trip: sends every query and one Sync, then reads one result
  // per query, in order. A failed statement makes the later ones
  // PGRES_PIPELINE_ABORTED (the caller reads each result); an explicit
  // transaction left open by a failure is rolled back before returning.
  // Throws ConnectionLost when the connection fails; ConnectionLostBeforeOurs
  // when the server had ended the session before running any of them (an
  // administrator's shutdown, SQLSTATE 57P01–57P03): nothing of them ran.
  net::awaitable<std::vector<Result>> pipeline(std::vector<Query> queries);
  // Waits for the next notification on a channel this connection LISTENs to
  // and returns the channel's name.
  net::awaitable<std::string> notification();

 private:
  enum class Wait { kRead, kWrite };
  // Waits until the socket is ready or the deadline passes (false).
  net::awaitable<bool> wait(Wait what, std::chrono::steady_clock::time_point deadline);
  net::awaitable<void> flush();
  [[noreturn]] void lost(const std::string& why, bool before_ours = false);

  asio::any_io_executor executor_;
  std::string conninfo_;
  std::chrono::milliseconds timeout_;
  PGconn* conn_ = nullptr;
  std::unordered_map<std::string, std::string> prepared_;  // statement text → name
};

// ConnectionLost with the detail whether anything sent may have run.
class ConnectionLostBeforeOurs : public ConnectionLost {
 public:
  using ConnectionLost::ConnectionLost;
};

}  // namespace tern::pg
