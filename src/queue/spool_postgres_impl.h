// Internal to the PostgreSQL spool: the PgSpool class, shared by its sources:
// spool_postgres.cpp (open, schema, reads, parts, take, close) and
// spool_postgres_commit.cpp (the committer thread: group commit, claims,
// lease renewal, LISTEN). The statements are in spool_postgres_sql.h.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net/awaitable.h"
#include "net/event_loop.h"
#include "pg/async.h"
#include "pg/blocking.h"
#include "queue/spool.h"
#include "queue/spool_postgres.h"
#include "queue/spool_postgres_ids.h"
#include "queue/trail_writer.h"

namespace tern::queue::postgres_spool {

class PgSpool final : public Spool {
 public:
  PgSpool(const config::Config& config, OpenMode mode);
  ~PgSpool() override;

  std::uint64_t next_id() override;
  bool has_room(std::uint64_t) override { return true; }  // the database's disk is its DBA's
  void apply(SpoolChange change, CommitCallback done) override;
  CommitResult store_part(std::uint64_t id, std::uint32_t seq, std::string_view bytes) override;
  std::vector<Envelope> list() override;
  std::optional<log::QueueCounts> count_states() override;
  bool keeps_pickup_records() const override { return true; }
  bool was_picked_up(const std::string& name) override;
  std::vector<std::string> picked_up_names() override;
  std::optional<Envelope> find(std::uint64_t id) override;
  std::optional<std::string> content(std::uint64_t id) override;
  void close() override;

  bool shared() const override { return true; }
  void claim(std::size_t local, std::size_t remote, ClaimCallback done) override;
  void release(std::uint64_t id) override;
  TakeResult take(std::uint64_t id, const std::string& action) override;
  void on_queued(std::function<void()> wake) override;
  std::chrono::steady_clock::time_point leases_until() const override;
  Trail* trail() override { return trail_view_ ? trail_view_.get() : nullptr; }

 private:
  // The message trail in table `trail` (spool_postgres_trail.cpp).
  class PgTrail final : public Trail {
   public:
    explicit PgTrail(PgSpool& spool) : spool_(spool) {}
    std::vector<TrailEvent> find(const TrailQuery& query) override {
      return spool_.trail_find(query);
    }
    void record(TrailEvent event) override {
      if (spool_.trail_writer_) spool_.trail_writer_->record(std::move(event));
    }

   private:
    PgSpool& spool_;
  };
  // spool_postgres_trail.cpp
  void trail_write(const std::vector<TrailEvent>& events);
  std::vector<TrailEvent> trail_find(const TrailQuery& query);
  void trail_expire(std::int64_t cutoff_ms);

  // Work for the committer, in the order it was asked for.
  struct Job {
    enum class Kind { kChange, kRelease, kClaim } kind = Kind::kChange;
    SpoolChange change;
    CommitCallback done;
    std::uint64_t id = 0;  // kRelease
    std::size_t local = 0, remote = 0;
    ClaimCallback claimed;
  };
  // A message leased to this process: its epoch, and what find() and
  // content() answer without asking the database.
  struct Lease {
    std::int64_t epoch = 0;
    std::optional<Envelope> envelope;  // nullopt: undecodable (error)
    std::string error;
    std::string content;
  };

  // spool_postgres.cpp
  void migrate();
  void check_schema();
  std::uint64_t reserve_block_blocking();
  void hold(std::uint64_t id, std::int64_t epoch, std::string_view envelope, std::string content);

  // spool_postgres_commit.cpp
  void start_committer();
  void signal();
  net::awaitable<void> commit_loop();
  net::awaitable<void> work(std::vector<Job>& jobs, bool want_ids, bool renew_now);
  net::awaitable<void> ensure_connected(bool forced);
  net::awaitable<void> accept_loop(std::size_t lane);
  net::awaitable<void> write_changes(pg::Connection& conn, std::vector<Job*>& changes,
                                     std::vector<std::uint64_t>& releases);
  net::awaitable<std::optional<std::string>> write_transaction(
      pg::Connection& conn, std::vector<Job*>& changes, const std::vector<std::uint64_t>& releases,
      bool batched);
  net::awaitable<void> run_claim(Job& job);
  net::awaitable<void> renew();
  net::awaitable<void> release_all();
  net::awaitable<void> forget_unknown_adds();
  net::awaitable<void> listen_loop();
  net::awaitable<void> renew_timer();
  // The change's statements; its new messages too when adds (else they are
  // written by add_new_messages with the batch's).
  void add_statements(std::vector<pg::Query>& q, const SpoolChange& change, bool& due, bool adds);
  std::optional<std::int64_t> epoch_of(std::uint64_t id);

  config::Config config_;
  OpenMode mode_;
  std::string owner_;  // lease_owner: the node's name (a queue tool: name/tool-pid)
  std::chrono::milliseconds lease_;
  pg::BlockingConnection reads_;  // list, find, content, take, the schema
  pg::BlockingConnection parts_;  // streamed parts: synchronous_commit off
  pg::BlockingConnection trail_;  // the trail writer's: synchronous_commit off
  IdBlocks ids_;

  std::mutex mu_;  // jobs_, closing_, wake_
  std::vector<Job> jobs_;
  std::vector<Job> adds_;  // changes that only add messages (new mail): the accept lanes
  bool closing_ = false;
  bool want_ids_ = false;
  bool accept_idle_ = false;  // an accept lane waits for new mail (apply() wakes it)
  std::function<void()> wake_;

  mutable std::mutex leases_mu_;
  std::unordered_map<std::uint64_t, Lease> leases_;
  std::chrono::steady_clock::time_point leases_until_{};

  // The committer: its own thread and event loop; io_ first, destroyed last.
  std::unique_ptr<asio::io_context> io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::unique_ptr<asio::steady_timer> signal_;
  std::unique_ptr<pg::Connection> writer_;
  std::unique_ptr<pg::Connection> listener_;
  // New mail commits on a connection of its own (kAccepters), so that it
  // never waits behind the scheduler's updates, claims and renewals.
  std::vector<std::unique_ptr<pg::Connection>> accepters_;
  std::unique_ptr<asio::steady_timer> accept_signal_;
  std::size_t accepters_running_ = 0;  // committer thread only
  std::thread thread_;
  std::promise<void> drained_;
  bool renew_due_ = false;  // committer thread only
  // New messages whose commit has an unknown outcome (the connection died
  // after COMMIT was sent): their clients got a 4xx, so they are removed once
  // the database is back, as the RocksDB spool removes its failed adds.
  std::vector<std::uint64_t> unknown_adds_;  // committer thread only
  bool ever_connected_ = false;
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{250};

  // The trail: null when [log] trail is 0; a writer unless opened read-only.
  std::unique_ptr<PgTrail> trail_view_;
  std::unique_ptr<TrailWriter> trail_writer_;
};

}  // namespace tern::queue::postgres_spool
