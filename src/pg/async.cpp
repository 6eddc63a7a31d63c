// The asynchronous PostgreSQL connection (async.h): libpq in nonblocking and
// pipeline mode, its socket watched by a stream_descriptor made for each wait
// (libpq may change the socket while it connects, trying host after host).
#include "pg/async.h"

#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <memory>

namespace tern::pg {

Connection::Connection(asio::any_io_executor executor, std::string conninfo,
                       std::chrono::milliseconds timeout)
    : executor_(std::move(executor)), conninfo_(std::move(conninfo)), timeout_(timeout) {}

Connection::~Connection() {
  close();
}

bool Connection::connected() const {
  return conn_ && PQstatus(conn_) == CONNECTION_OK;
}

void Connection::close() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
  prepared_.clear();  // prepared statements belong to the session
}

void Connection::lost(const std::string& why, bool before_ours) {
  std::string message = why.empty() ? error_line(conn_) : why;
  if (message.empty()) message = "the connection to the database was lost";
  close();
  if (before_ours) throw ConnectionLostBeforeOurs(message);
  throw ConnectionLost(message);
}

net::awaitable<bool> Connection::wait(Wait what, std::chrono::steady_clock::time_point deadline) {
  int fd = PQsocket(conn_);
  if (fd < 0) lost("");
  auto sd = std::make_shared<asio::posix::stream_descriptor>(executor_, fd);
  // Released, never closed, even when the loop is destroyed with this wait pending.
  struct Release {
    std::shared_ptr<asio::posix::stream_descriptor>& sd;
    ~Release() {
      if (sd && sd->is_open()) sd->release();
    }
  } release{sd};
  asio::steady_timer timer(executor_);
  bool timed_out = false;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    timer.expires_at(deadline);
    std::weak_ptr<asio::posix::stream_descriptor> weak = sd;
    timer.async_wait([weak, &timed_out](std::error_code ec) {
      if (ec) return;
      if (auto s = weak.lock()) {
        timed_out = true;
        s->cancel();
      }
    });
  }
  auto type = what == Wait::kRead ? asio::posix::stream_descriptor::wait_read
                                  : asio::posix::stream_descriptor::wait_write;
  auto [ec] = co_await sd->async_wait(type, net::use_tuple);
  timer.cancel();
  sd->release();  // libpq's socket: never closed here
  sd.reset();     // the timer's handler, if already queued, finds it gone
  if (timed_out) co_return false;
  if (ec && ec != asio::error::operation_aborted) lost("waiting for the database: " + ec.message());
  co_return true;
}

net::awaitable<void> Connection::connect() {
  close();
  // connect_timeout for libpq's own blocking steps; the conninfo's value wins.
  const char* keywords[] = {"connect_timeout", "dbname", nullptr};
  std::string seconds = std::to_string(std::max<long>(1, timeout_.count() / 1000));
  const char* values[] = {seconds.c_str(), conninfo_.c_str(), nullptr};
  conn_ = PQconnectStartParams(keywords, values, 1);
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD)
    lost("cannot connect to " + describe(conninfo_) + ": " + error_line(conn_));
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  for (;;) {
    if (st == PGRES_POLLING_OK) break;
    if (st == PGRES_POLLING_FAILED)
      lost("cannot connect to " + describe(conninfo_) + ": " + error_line(conn_));
    bool ready = co_await wait(st == PGRES_POLLING_READING ? Wait::kRead : Wait::kWrite, deadline);
    if (!ready)
      lost("cannot connect to " + describe(conninfo_) + ": no answer within " +
           std::to_string(timeout_.count()) + " ms");
    st = PQconnectPoll(conn_);
  }
  quiet_notices(conn_);
  if (PQsetnonblocking(conn_, 1) != 0 || PQenterPipelineMode(conn_) != 1)
    lost("cannot use the connection to " + describe(conninfo_) + ": " + error_line(conn_));
}

// Sends what libpq buffered. While the server's answers fill our receive
// buffer it may stop reading: so input is consumed between short waits.
net::awaitable<void> Connection::flush() {
  for (;;) {
    int r = PQflush(conn_);
    if (r == 0) co_return;
    if (r < 0) lost("");
    co_await wait(Wait::kWrite, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
    if (!PQconsumeInput(conn_)) lost("");
  }
}

net::awaitable<std::vector<Result>> Connection::pipeline(std::vector<Query> queries) {
  if (!connected()) lost("not connected to the database", true);
  std::vector<bool> preparing;  // per query: a PQsendPrepare result comes first
  for (const auto& q : queries) {
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    for (const auto& p : q.params) {
      values.push_back(p.value ? p.value->data() : nullptr);
      lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
      formats.push_back(p.binary ? 1 : 0);
    }
    // Statements with parameters are prepared once per session: the server
    // then skips parsing and planning them for every message.
    bool send_ok = true;
    if (q.params.empty()) {
      send_ok = PQsendQueryParams(conn_, q.sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr,
                                  q.binary_results ? 1 : 0);
      preparing.push_back(false);
    } else {
      auto [it, added] = prepared_.try_emplace(q.sql, "t" + std::to_string(prepared_.size()));
      if (added)
        send_ok = PQsendPrepare(conn_, it->second.c_str(), q.sql.c_str(),
                                static_cast<int>(values.size()), nullptr);
      preparing.push_back(added);
      send_ok =
          send_ok && PQsendQueryPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()),
                                         values.data(), lengths.data(), formats.data(),
                                         q.binary_results ? 1 : 0);
    }
    if (!send_ok) lost("");
  }
  if (!PQpipelineSync(conn_)) lost("");
  co_await flush();
  std::vector<Result> results;
  for (;;) {
    while (PQisBusy(conn_)) {
      co_await wait(Wait::kRead, std::chrono::steady_clock::time_point::max());
      if (!PQconsumeInput(conn_)) break;  // PQgetResult reports the failure
    }
    PGresult* r = PQgetResult(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) {
      Result first(r);
      std::string state = first.sqlstate();
      bool admin_shutdown =
          results.empty() && (state == "57P01" || state == "57P02" || state == "57P03");
      lost(r ? first.error() : "", admin_shutdown);
    }
    if (!r) continue;  // the end of one statement's results
    if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      break;
    }
    results.emplace_back(r);
  }
  // One result per query: a prepare's result is dropped, or stands for the
  // query when it failed (the statement is prepared again next time).
  std::vector<Result> out;
  std::size_t k = 0;
  for (std::size_t i = 0; i < queries.size() && k < results.size(); ++i) {
    if (preparing[i]) {
      Result prepare = std::move(results[k++]);
      if (!prepare.ok()) {
        prepared_.erase(queries[i].sql);
        if (k < results.size()) ++k;
        out.push_back(std::move(prepare));
        continue;
      }
    }
    if (k < results.size()) out.push_back(std::move(results[k++]));
  }
  results = std::move(out);
  if (PQtransactionStatus(conn_) == PQTRANS_INERROR ||
      PQtransactionStatus(conn_) == PQTRANS_INTRANS) {
    std::vector<Query> rollback{{"ROLLBACK", {}, false}};
    co_await pipeline(std::move(rollback));
  }
  co_return results;
}

net::awaitable<std::string> Connection::notification() {
  for (;;) {
    if (!connected()) lost("");
    if (PGnotify* n = PQnotifies(conn_)) {
      std::string channel = n->relname;
      PQfreemem(n);
      co_return channel;
    }
    co_await wait(Wait::kRead, std::chrono::steady_clock::time_point::max());
    if (!PQconsumeInput(conn_)) lost("");
  }
}

}  // namespace tern::pg
