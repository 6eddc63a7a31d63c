// The PostgreSQL spool's committer: one thread, one event loop, asynchronous
// connections. Every pending change goes into one transaction sent as one
// pipeline (group commit, synchronous_commit on): new mail on the accept
// connection, the rest (then claims, lease renewal, id blocks) on the writer.
// A third connection LISTENs for tern_queue (on_queued).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <unordered_set>

#include "log/metrics.h"
#include "queue/spool_postgres_impl.h"
#include "queue/spool_postgres_sql.h"

namespace tern::queue::postgres_spool {

namespace {

constexpr std::chrono::milliseconds kFirstBackoff{250};
constexpr std::chrono::milliseconds kMaxBackoff{5000};
constexpr std::size_t kMaxChangesPerCommit = 500;
constexpr std::size_t kMaxChunkBytes = 64 * 1024 * 1024;
// Connections for new mail. Two (a batch sent while the previous one waits for
// its WAL flush) measured slower than one: each transaction flushes on its own.
constexpr std::size_t kAccepters = 1;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

pg::Param boolean(bool b) {
  return pg::text(b ? "true" : "false");
}

pg::Param held_param(const Envelope& e) {
  return e.held.empty() ? pg::null() : pg::text(pg::valid_text(e.held));
}

// Every pending recipient is local (the scheduler's local lane).
bool all_local(const Envelope& e) {
  bool any = false;
  for (const auto& r : e.recipients) {
    if (r.done()) continue;
    if (!r.local) return false;
    any = true;
  }
  return any;
}

// The deliveries' arrays: addresses, states, attempts, last replies.
void delivery_params(const Envelope& e, std::vector<pg::Param>& params) {
  std::vector<std::string> addresses, states, replies;
  std::vector<std::int64_t> attempts;
  for (const auto& r : e.recipients) {
    addresses.push_back(r.address);
    states.push_back(std::string(state_name(r.state)));
    attempts.push_back(r.attempts);
    replies.push_back(r.last_reply);
  }
  params.push_back(pg::text_array(addresses));
  params.push_back(pg::text_array(states));
  params.push_back(pg::int_array(attempts));
  params.push_back(pg::text_array(replies));
}

// The pieces of one part of a message as chunk rows (seq = part << 20 | piece);
// nothing for an empty part.
void add_pieces(std::int64_t id, std::int64_t part, std::string_view bytes,
                std::vector<std::int64_t>& ids, std::vector<std::int64_t>& seqs,
                std::vector<std::string_view>& data) {
  for (std::int64_t piece = 0; !bytes.empty(); ++piece) {
    auto n = std::min<std::size_t>(bytes.size(), sql::kChunk);
    ids.push_back(id);
    seqs.push_back((part << 20) + piece);
    data.push_back(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
}

// Every new message of a batch in three statements (four when one of them
// has streamed parts): its rows, its chunks, its deliveries.
void add_new_messages(std::vector<pg::Query>& q, const std::vector<const NewMessage*>& adds,
                      bool& due) {
  if (adds.empty()) return;
  std::vector<std::int64_t> ids, next_attempts, parts, streamed, streamed_parts;
  std::vector<std::string> envelopes;
  std::vector<bool> local;
  std::vector<std::optional<std::string>> held;
  std::vector<std::int64_t> chunk_ids, seqs;
  std::vector<std::string_view> data;
  std::vector<std::int64_t> d_ids, d_idx, d_attempts;
  std::vector<std::optional<std::string>> d_addresses, d_states, d_replies;
  for (const auto* m : adds) {
    const auto& e = m->envelope;
    auto id = static_cast<std::int64_t>(e.id);
    ids.push_back(id);
    envelopes.push_back(encode(e));
    next_attempts.push_back(e.next_attempt_ms);
    local.push_back(all_local(e));
    held.push_back(e.held.empty() ? std::nullopt : std::optional<std::string>(e.held));
    parts.push_back(m->parts);
    if (m->parts > 0) {
      streamed.push_back(id);
      streamed_parts.push_back(m->parts);
    }
    add_pieces(id, 0, m->prefix, chunk_ids, seqs, data);
    add_pieces(id, static_cast<std::int64_t>(m->parts) + 1, m->content, chunk_ids, seqs, data);
    std::int64_t idx = 0;
    for (const auto& r : e.recipients) {
      d_ids.push_back(id);
      d_idx.push_back(idx++);
      d_addresses.emplace_back(r.address);
      d_states.emplace_back(std::string(state_name(r.state)));
      d_attempts.push_back(r.attempts);
      d_replies.emplace_back(r.last_reply);
    }
    if (e.held.empty()) due = true;
  }
  std::vector<std::string_view> envelope_views(envelopes.begin(), envelopes.end());
  q.push_back(
      {sql::kAddMessages,
       {pg::bigint_array(ids), pg::bytea_array(envelope_views), pg::bigint_array(next_attempts),
        pg::boolean_array(local), pg::text_array_binary(held), pg::integer_array(parts)},
       false});
  // Chunk rows in statements of at most kMaxChunkBytes: a value the server
  // reads is at most 1 GB, and a batch may hold large notices (DSNs).
  for (std::size_t first = 0; first < data.size();) {
    std::size_t last = first, bytes = 0;
    while (last < data.size() && (last == first || bytes + data[last].size() <= kMaxChunkBytes))
      bytes += data[last++].size();
    q.push_back({sql::kAddChunks,
                 {pg::bigint_array({chunk_ids.begin() + first, chunk_ids.begin() + last}),
                  pg::bigint_array({seqs.begin() + first, seqs.begin() + last}),
                  pg::bytea_array({data.begin() + first, data.begin() + last})},
                 false});
    first = last;
  }
  if (!d_ids.empty())
    q.push_back({sql::kAddDeliveries,
                 {pg::bigint_array(d_ids), pg::integer_array(d_idx),
                  pg::text_array_binary(d_addresses), pg::text_array_binary(d_states),
                  pg::integer_array(d_attempts), pg::text_array_binary(d_replies)},
                 false});
  if (!streamed.empty())
    q.push_back({sql::kAddPartsPresent,
                 {pg::bigint_array(streamed), pg::bigint_array(streamed_parts)},
                 false});
}

void call(const CommitCallback& done, CommitResult r) {
  try {
    done(std::move(r));
  } catch (const std::exception& e) {
    spdlog::error("spool: a commit callback failed: {}", e.what());
  }
}

}  // namespace

void PgSpool::start_committer() {
  io_ = std::make_unique<asio::io_context>(1);
  work_.emplace(io_->get_executor());
  signal_ = std::make_unique<asio::steady_timer>(*io_);
  writer_ = std::make_unique<pg::Connection>(io_->get_executor(), config_.spool.postgres);
  listener_ = std::make_unique<pg::Connection>(io_->get_executor(), config_.spool.postgres);
  accept_signal_ = std::make_unique<asio::steady_timer>(*io_);
  for (std::size_t i = 0; i < kAccepters; ++i) {
    accepters_.push_back(
        std::make_unique<pg::Connection>(io_->get_executor(), config_.spool.postgres));
    ++accepters_running_;
    asio::co_spawn(*io_, accept_loop(i), asio::detached);
  }
  asio::co_spawn(*io_, commit_loop(), asio::detached);
  asio::co_spawn(*io_, renew_timer(), asio::detached);
  thread_ = std::thread([this] { net::run_event_loop(*io_, "spool (postgres)"); });
}

void PgSpool::signal() {
  if (!io_) return;
  asio::post(*io_, [this] {
    if (signal_) signal_->cancel();
    if (accept_signal_) accept_signal_->cancel();
  });
}

void PgSpool::apply(SpoolChange change, CommitCallback done) {
  if (mode_ == OpenMode::kReadOnly) {
    done({SpoolStatus::kError, "spool opened read-only"});
    return;
  }
  {
    // find() of a leased message answers what was written last.
    std::lock_guard lock(leases_mu_);
    for (const auto& e : change.update) {
      auto it = leases_.find(e.id);
      if (it != leases_.end()) it->second.envelope = e;
    }
  }
  {
    std::lock_guard lock(mu_);
    if (!closing_) {
      bool only_adds = !change.add.empty() && change.update.empty() && change.remove.empty() &&
                       change.discard.empty();
      Job job;
      job.change = std::move(change);
      job.done = std::move(done);
      (only_adds ? adds_ : jobs_).push_back(std::move(job));
      if (!only_adds) {
        signal();
      } else if (std::exchange(accept_idle_, false) && io_) {
        // A lane busy with a commit takes what came meanwhile when it
        // returns: waking the committer's thread for each message is wasted.
        asio::post(*io_, [this] {
          if (accept_signal_) accept_signal_->cancel();
        });
      }
      return;
    }
  }
  done({SpoolStatus::kError, "spool is closing"});
}

void PgSpool::claim(std::size_t local, std::size_t remote, ClaimCallback done) {
  {
    std::lock_guard lock(mu_);
    if (!closing_ && io_) {
      Job job;
      job.kind = Job::Kind::kClaim;
      job.local = local;
      job.remote = remote;
      job.claimed = std::move(done);
      jobs_.push_back(std::move(job));
      signal();
      return;
    }
  }
  done({});
}

void PgSpool::release(std::uint64_t id) {
  std::lock_guard lock(mu_);
  if (closing_ || !io_) return;  // close() releases every lease
  Job job;
  job.kind = Job::Kind::kRelease;
  job.id = id;
  jobs_.push_back(std::move(job));
  signal();
}

void PgSpool::on_queued(std::function<void()> wake) {
  {
    std::lock_guard lock(mu_);
    bool first = !wake_;
    wake_ = std::move(wake);
    if (!first || !io_) return;
  }
  asio::co_spawn(*io_, listen_loop(), asio::detached);
}

std::optional<std::int64_t> PgSpool::epoch_of(std::uint64_t id) {
  std::lock_guard lock(leases_mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  return it->second.epoch;
}

net::awaitable<void> PgSpool::ensure_connected(bool forced) {
  if (writer_->connected()) co_return;
  if (!forced && std::chrono::steady_clock::now() < retry_at_) co_return;
  std::string failure;
  try {
    co_await writer_->connect();
  } catch (const pg::ConnectionLost& e) {
    failure = e.what();
  }
  if (failure.empty()) {
    if (backoff_ != kFirstBackoff)
      spdlog::info("spool: connected to the database again ({})",
                   pg::describe(config_.spool.postgres));
    ever_connected_ = true;
    backoff_ = kFirstBackoff;
    co_return;
  }
  if (backoff_ == kFirstBackoff)
    spdlog::error("spool: {}; new mail is refused until it is back", failure);
  retry_at_ = std::chrono::steady_clock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

net::awaitable<void> PgSpool::commit_loop() {
  for (;;) {
    std::vector<Job> jobs;
    bool closing = false, want_ids = false;
    {
      std::lock_guard lock(mu_);
      if (jobs_.size() <= kMaxChangesPerCommit) {
        jobs.swap(jobs_);
      } else {
        std::move(jobs_.begin(), jobs_.begin() + kMaxChangesPerCommit, std::back_inserter(jobs));
        jobs_.erase(jobs_.begin(), jobs_.begin() + kMaxChangesPerCommit);
      }
      closing = closing_ && jobs_.empty();
      want_ids = std::exchange(want_ids_, false);
    }
    bool renew_now = std::exchange(renew_due_, false);
    if (!unknown_adds_.empty() && writer_->connected()) {
      std::string failure;
      try {
        co_await forget_unknown_adds();
      } catch (const std::exception& e) {
        failure = e.what();
      }
      if (!failure.empty()) spdlog::error("spool: the committer failed: {}", failure);
    }
    if (jobs.empty() && !want_ids && !renew_now) {
      if (closing && accepters_running_ == 0) break;
      // Reconnects in the background after a loss, with backoff.
      if (!writer_->connected() && std::chrono::steady_clock::now() >= retry_at_) {
        co_await ensure_connected(false);
        continue;
      }
      signal_->expires_at(writer_->connected() ? std::chrono::steady_clock::time_point::max()
                                               : retry_at_);
      co_await signal_->async_wait(net::use_tuple);
      continue;
    }
    // Nothing thrown here may end the committer or leave a caller waiting.
    std::string failure;
    try {
      co_await work(jobs, want_ids, renew_now);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      spdlog::error("spool: the committer failed: {}", failure);
      for (auto& j : jobs) {
        if (j.done) call(std::exchange(j.done, nullptr), {SpoolStatus::kError, failure});
        if (j.claimed) std::exchange(j.claimed, nullptr)({});
      }
    }
  }
  try {
    co_await release_all();
  } catch (const std::exception& e) {
    spdlog::warn("spool: releasing this node's leases failed: {}", e.what());
  }
  drained_.set_value();
}

// One round of the committer: the changes and releases in one transaction,
// then the claims, the lease renewal and an id block when they are due.
net::awaitable<void> PgSpool::work(std::vector<Job>& jobs, bool want_ids, bool renew_now) {
  co_await ensure_connected(true);
  std::vector<Job*> changes;
  std::vector<std::uint64_t> releases;
  for (auto& j : jobs) {
    if (j.kind == Job::Kind::kChange) changes.push_back(&j);
    if (j.kind == Job::Kind::kRelease) releases.push_back(j.id);
  }
  co_await write_changes(*writer_, changes, releases);
  for (auto& j : jobs)
    if (j.kind == Job::Kind::kClaim) co_await run_claim(j);
  if (renew_now) co_await renew();
  if (want_ids) {
    std::optional<std::uint64_t> block;
    try {
      std::vector<pg::Query> q{{sql::kNextBlock, {}, false}};
      auto r = co_await writer_->pipeline(std::move(q));
      if (r.size() == 1 && r[0].ok()) block = static_cast<std::uint64_t>(r[0].integer(0, 0));
    } catch (const pg::ConnectionLost&) {
    }
    if (block) {
      ids_.add(*block);
    } else {
      ids_.failed();  // next_id() reserves one itself if it runs out
    }
  }
}

// An accept lane: new mail only (group commit of the sessions' messages), on
// a connection of its own.
net::awaitable<void> PgSpool::accept_loop(std::size_t lane) {
  auto& conn = *accepters_[lane];
  for (;;) {
    std::vector<Job> jobs;
    bool closing = false;
    {
      std::lock_guard lock(mu_);
      std::size_t n = std::min(adds_.size(), kMaxChangesPerCommit);
      std::move(adds_.begin(), adds_.begin() + n, std::back_inserter(jobs));
      adds_.erase(adds_.begin(), adds_.begin() + n);
      closing = closing_ && adds_.empty();
      if (jobs.empty()) accept_idle_ = true;  // apply() wakes the lanes
    }
    if (jobs.empty()) {
      if (closing) break;
      accept_signal_->expires_at(std::chrono::steady_clock::time_point::max());
      co_await accept_signal_->async_wait(net::use_tuple);
      continue;
    }
    std::string failure;
    try {
      if (!conn.connected()) {
        try {
          co_await conn.connect();
        } catch (const pg::ConnectionLost&) {
          // write_transaction reports it (not connected) to each caller
        }
      }
      std::vector<Job*> changes;
      for (auto& j : jobs) changes.push_back(&j);
      std::vector<std::uint64_t> no_releases;
      co_await write_changes(conn, changes, no_releases);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      spdlog::error("spool: the committer failed: {}", failure);
      for (auto& j : jobs)
        if (j.done) call(std::exchange(j.done, nullptr), {SpoolStatus::kError, failure});
    }
    // Another batch may have come while this lane wrote: the others may be waiting.
    accept_signal_->cancel();
  }
  --accepters_running_;
  signal_->cancel();  // the committer waits for the lanes before it closes
}

// The changes in one transaction, then their callbacks. When a statement
// fails (not the connection), each change is tried again alone so that one
// bad change fails alone.
net::awaitable<void> PgSpool::write_changes(pg::Connection& conn, std::vector<Job*>& changes,
                                            std::vector<std::uint64_t>& releases) {
  if (changes.empty() && releases.empty()) co_return;
  const auto started = std::chrono::steady_clock::now();  // tern_spool_commit_seconds
  auto error = co_await write_transaction(conn, changes, releases, true);
  log::metrics().spool_commit.observe_since(started);
  if (error && error->rfind("sql:", 0) == 0 && !changes.empty()) {
    // Alone, with the idempotent statements: a message that a commit of
    // unknown outcome wrote before is written again.
    const std::vector<std::uint64_t> no_releases;
    for (auto* job : changes) {
      std::vector<Job*> one{job};
      auto e = co_await write_transaction(conn, one, no_releases, false);
      call(std::exchange(job->done, nullptr),
           e ? CommitResult{SpoolStatus::kError, *e} : CommitResult{});
    }
    std::vector<Job*> no_changes;
    if (!releases.empty()) co_await write_transaction(conn, no_changes, releases, false);
    co_return;
  }
  for (auto* job : changes)
    call(std::exchange(job->done, nullptr),
         error ? CommitResult{SpoolStatus::kError, *error} : CommitResult{});
}

// One transaction in one round trip; nullopt when it committed, else why
// ("sql: …" when a statement failed). batched: the new messages of every
// change in one statement per table (plain INSERTs); else one message at a
// time with upserts. A connection that the server had closed before (its
// shutdown) is opened again and the transaction sent once more.
net::awaitable<std::optional<std::string>> PgSpool::write_transaction(
    pg::Connection& conn, std::vector<Job*>& changes, const std::vector<std::uint64_t>& releases,
    bool batched) {
  std::vector<pg::Query> q;
  q.push_back({"BEGIN", {}, false});
  bool due = false;
  std::vector<std::pair<std::size_t, std::uint64_t>> checks;  // leased writes: result, id
  std::vector<std::uint64_t> removed;
  if (batched) {
    std::vector<const NewMessage*> adds;
    for (auto* job : changes)
      for (const auto& m : job->change.add) adds.push_back(&m);
    add_new_messages(q, adds, due);
  }
  for (auto* job : changes) {
    add_statements(q, job->change, due, !batched);
    for (auto id : job->change.remove) removed.push_back(id);
  }
  // The conditional writes (updates, removals): their results say whether they wrote.
  for (std::size_t i = 0; i < q.size(); ++i)
    if (q[i].sql == sql::kUpdateMessage || q[i].sql == sql::kRemoveMessage)
      checks.emplace_back(i, static_cast<std::uint64_t>(std::stoull(*q[i].params[0].value)));
  for (auto id : releases) {
    auto epoch = epoch_of(id);
    if (epoch)
      q.push_back(
          {sql::kRelease,
           {pg::number(static_cast<std::int64_t>(id)), pg::text(owner_), pg::number(*epoch)},
           false});
  }
  if (due) q.push_back({sql::kNotify, {}, false});
  q.push_back({"COMMIT", {}, false});

  std::vector<pg::Result> results;
  std::optional<std::string> lost;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool again = false;
    try {
      results = co_await conn.pipeline(q);
      lost.reset();
    } catch (const pg::ConnectionLostBeforeOurs& e) {
      lost = e.what();
      again = attempt == 0;
    } catch (const pg::ConnectionLost& e) {
      lost = e.what();  // the outcome is unknown: the client gets a 4xx
      for (auto* job : changes)
        for (const auto& m : job->change.add) unknown_adds_.push_back(m.envelope.id);
    }
    if (!again) break;
    if (&conn == writer_.get()) {
      co_await ensure_connected(true);
    } else {
      std::string failure;
      try {
        co_await conn.connect();
      } catch (const pg::ConnectionLost& e) {
        failure = e.what();
      }
    }
  }
  if (lost) {
    spdlog::error("spool: a commit failed: {}", *lost);
    co_return "the database connection failed: " + *lost;
  }
  for (const auto& r : results) {
    if (!r.ok() && PQresultStatus(r.get()) != PGRES_PIPELINE_ABORTED) {
      spdlog::error("spool: a commit failed: {}", r.error());
      co_return "sql: " + r.error();
    }
  }
  if (results.size() != q.size() || !results.back().ok()) co_return "sql: the commit was aborted";
  // Counted as written: the node holding the lease now writes its own outcome.
  for (const auto& [index, id] : checks)
    if (results[index].rows() == 1 && results[index].integer(0, 0) == 0)
      spdlog::warn("{}: lease taken by another node; possible duplicate delivery", id);
  std::lock_guard lock(leases_mu_);
  for (auto id : removed) leases_.erase(id);
  for (auto id : releases) leases_.erase(id);
  co_return std::nullopt;
}

void PgSpool::add_statements(std::vector<pg::Query>& q, const SpoolChange& change, bool& due,
                             bool adds) {
  auto now = now_ms();
  static const std::vector<NewMessage> kNone;
  for (const auto& m : adds ? change.add : kNone) {
    const auto& e = m.envelope;
    auto id = pg::number(static_cast<std::int64_t>(e.id));
    q.push_back({sql::kInsertMessage,
                 {id, pg::bytes(encode(e)), pg::number(e.next_attempt_ms), boolean(all_local(e)),
                  held_param(e), pg::number(m.parts)},
                 false});
    q.push_back({sql::kInsertChunks, {id, pg::number(0), pg::bytes(m.prefix)}, false});
    q.push_back({sql::kInsertChunks,
                 {id, pg::number(static_cast<std::int64_t>(m.parts) + 1), pg::bytes(m.content)},
                 false});
    if (m.parts > 0) q.push_back({sql::kPartsPresent, {id, pg::number(m.parts)}, false});
    std::vector<pg::Param> params{id};
    delivery_params(e, params);
    q.push_back({sql::kUpsertDeliveries, std::move(params), false});
    if (e.held.empty()) due = true;
  }
  for (const auto& e : change.update) {
    auto epoch = epoch_of(e.id);
    std::vector<pg::Param> params{pg::number(static_cast<std::int64_t>(e.id)),
                                  pg::bytes(encode(e)),
                                  pg::number(e.next_attempt_ms),
                                  boolean(all_local(e)),
                                  held_param(e),
                                  epoch ? pg::number(*epoch) : pg::null(),
                                  pg::text(owner_)};
    delivery_params(e, params);
    q.push_back({sql::kUpdateMessage, std::move(params), false});
    if (e.held.empty() && e.next_attempt_ms <= now) due = true;
  }
  for (auto id : change.remove) {
    auto epoch = epoch_of(id);
    q.push_back({sql::kRemoveMessage,
                 {pg::number(static_cast<std::int64_t>(id)),
                  epoch ? pg::number(*epoch) : pg::null(), pg::text(owner_)},
                 false});
  }
  for (auto id : change.discard)
    q.push_back({sql::kDiscard, {pg::number(static_cast<std::int64_t>(id))}, false});
  for (const auto& name : change.picked_up)
    q.push_back({sql::kRecordPickup, {pg::text(owner_), pg::text(name)}, false});
  for (const auto& name : change.forget_picked_up)
    q.push_back({sql::kForgetPickup, {pg::text(owner_), pg::text(name)}, false});
}

net::awaitable<void> PgSpool::run_claim(Job& job) {
  std::vector<Claim> out;
  std::vector<pg::Query> q;
  auto lane = [&](bool local, std::size_t n) {
    if (n > 0)
      q.push_back({sql::kClaim,
                   {pg::text(owner_), pg::number(lease_.count()), boolean(local),
                    pg::number(static_cast<std::int64_t>(n))},
                   true});
  };
  lane(true, job.local);
  lane(false, job.remote);
  std::vector<std::pair<std::uint64_t, std::string>> unreadable;
  if (!q.empty() && writer_->connected()) {
    auto start = std::chrono::steady_clock::now();
    std::vector<pg::Result> results;
    try {
      results = co_await writer_->pipeline(std::move(q));
    } catch (const pg::ConnectionLost& e) {
      spdlog::warn("spool: claiming failed: {}", e.what());
    }
    for (const auto& r : results) {
      if (!r.ok()) {
        spdlog::warn("spool: claiming failed: {}", r.error());
        continue;
      }
      for (int i = 0; i < r.rows(); ++i) {
        auto id = static_cast<std::uint64_t>(r.integer(i, 0));
        Lease lease;
        lease.epoch = r.integer(i, 2);
        try {
          lease.envelope = decode_envelope(r.raw(i, 3));
        } catch (const std::exception& e) {
          unreadable.emplace_back(id, e.what());
          continue;
        }
        lease.content = r.string(i, 5);
        {
          std::lock_guard lock(leases_mu_);
          if (leases_.empty()) leases_until_ = start + lease_ - lease_ / 6;
          leases_[id] = std::move(lease);
        }
        out.push_back({id, r.boolean(i, 1), r.string(i, 4)});
      }
    }
  }
  // An envelope that does not decode is held with the reason (quarantine),
  // as the RocksDB spool lists one: the administrator decides.
  if (!unreadable.empty()) {
    std::vector<pg::Query> hold;
    for (const auto& [id, why] : unreadable) {
      spdlog::error("{}: the envelope cannot be read ({}); the message is held", id, why);
      hold.push_back({sql::kQuarantine,
                      {pg::number(static_cast<std::int64_t>(id)),
                       pg::text(pg::valid_text("unreadable envelope: " + why)), pg::text(owner_)},
                      false});
    }
    try {
      co_await writer_->pipeline(std::move(hold));
    } catch (const pg::ConnectionLost&) {
    }
  }
  try {
    std::exchange(job.claimed, nullptr)(std::move(out));
  } catch (const std::exception& e) {
    spdlog::error("spool: a claim callback failed: {}", e.what());
  }
}

net::awaitable<void> PgSpool::renew() {
  std::vector<std::int64_t> ids;
  {
    std::lock_guard lock(leases_mu_);
    for (const auto& [id, lease] : leases_) ids.push_back(static_cast<std::int64_t>(id));
  }
  if (ids.empty() || !writer_->connected()) co_return;
  auto start = std::chrono::steady_clock::now();
  std::vector<pg::Query> q{
      {sql::kRenew, {pg::text(owner_), pg::number(lease_.count()), pg::int_array(ids)}, false}};
  std::vector<pg::Result> results;
  try {
    results = co_await writer_->pipeline(std::move(q));
  } catch (const pg::ConnectionLost& e) {
    spdlog::warn("spool: renewing leases failed: {}", e.what());
    co_return;
  }
  if (results.size() != 1 || !results[0].ok()) {
    spdlog::warn("spool: renewing leases failed: {}",
                 results.empty() ? "no result" : results[0].error());
    co_return;
  }
  std::unordered_set<std::int64_t> kept;
  for (int i = 0; i < results[0].rows(); ++i) kept.insert(results[0].integer(i, 0));
  std::lock_guard lock(leases_mu_);
  leases_until_ = start + lease_ - lease_ / 6;
  for (auto id : ids) {
    if (kept.count(id)) continue;
    // Removed meanwhile, or taken after our lease ran out: the epoch kept in
    // leases_ makes any later write of ours a logged no-op.
    auto it = leases_.find(static_cast<std::uint64_t>(id));
    if (it != leases_.end() && it->second.epoch >= 0) {
      spdlog::warn("{}: lease lost; possible duplicate delivery", id);
      it->second.epoch = -1;  // never matches: writes are skipped
    }
  }
}

net::awaitable<void> PgSpool::renew_timer() {
  asio::steady_timer timer(*io_);
  for (;;) {
    timer.expires_after(std::max(lease_ / 3, std::chrono::milliseconds(100)));
    auto [ec] = co_await timer.async_wait(net::use_tuple);
    if (ec) co_return;
    renew_due_ = true;
    signal_->cancel();
  }
}

net::awaitable<void> PgSpool::forget_unknown_adds() {
  std::vector<pg::Query> q{{"BEGIN", {}, false}};
  for (auto id : unknown_adds_)
    q.push_back({sql::kRemoveMessage,
                 {pg::number(static_cast<std::int64_t>(id)), pg::null(), pg::text(owner_)},
                 false});
  q.push_back({"COMMIT", {}, false});
  std::vector<pg::Result> results;
  try {
    results = co_await writer_->pipeline(std::move(q));
  } catch (const pg::ConnectionLost&) {
    co_return;  // tried again once connected
  }
  if (results.empty() || !results.back().ok()) {
    spdlog::warn("spool: removing messages whose commit failed: {}",
                 results.empty() ? "no result" : results.back().error());
    co_return;
  }
  std::int64_t removed = 0;
  for (std::size_t i = 1; i + 1 < results.size(); ++i)
    if (results[i].rows() == 1) removed += results[i].integer(0, 0);
  if (removed > 0)
    spdlog::warn(
        "spool: removed {} message(s) whose commit failed with the connection "
        "(their clients got a 4xx)",
        removed);
  unknown_adds_.clear();
}

net::awaitable<void> PgSpool::release_all() {
  if (!writer_->connected()) co_return;
  std::vector<pg::Query> q{{sql::kReleaseAll, {pg::text(owner_)}, false}};
  try {
    co_await writer_->pipeline(std::move(q));
  } catch (const pg::ConnectionLost& e) {
    spdlog::warn("spool: releasing this node's leases failed: {}", e.what());
  }
  std::lock_guard lock(leases_mu_);
  leases_.clear();
}

// LISTEN tern_queue: wake on every notification, and once after each
// (re)connect, for notifications sent meanwhile are lost.
net::awaitable<void> PgSpool::listen_loop() {
  auto backoff = kFirstBackoff;
  asio::steady_timer timer(*io_);
  auto wake = [this] {
    std::function<void()> w;
    {
      std::lock_guard lock(mu_);
      w = wake_;
    }
    if (!w) return;
    try {
      w();
    } catch (const std::exception& e) {
      spdlog::error("spool: a wake-up failed: {}", e.what());
    }
  };
  for (;;) {
    std::string failure;
    try {
      co_await listener_->connect();
      std::vector<pg::Query> q{{sql::kListen, {}, false}};
      auto r = co_await listener_->pipeline(std::move(q));
      if (r.size() != 1 || !r[0].ok())
        throw pg::ConnectionLost(r.empty() ? "LISTEN failed" : r[0].error());
      backoff = kFirstBackoff;
      wake();
      for (;;) {
        co_await listener_->notification();
        wake();
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
    {
      std::lock_guard lock(mu_);
      if (closing_) co_return;
    }
    if (backoff == kFirstBackoff) spdlog::warn("spool: LISTEN connection: {}", failure);
    timer.expires_after(backoff);
    co_await timer.async_wait(net::use_tuple);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

}  // namespace tern::queue::postgres_spool
