// The shared calls of the PostgreSQL spool against a real database: claims by
// lane, leases one node at a time, writes under a lease that was taken skipped,
// an administrator's take() and recorded action, release, LISTEN wake-ups, ids
// unique across nodes, batches of new mail written row by row and a failed
// batch written change by change. Needs TERN_TEST_POSTGRES (a libpq string of an empty
// database): tests/integration/test_postgres_spool.py runs these with one.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <mutex>
#include <set>

#include "config/config.h"
#include "pg/blocking.h"
#include "queue/spool.h"

namespace tern::queue {
namespace {

using namespace std::chrono_literals;

const char* conninfo() {
  return std::getenv("TERN_TEST_POSTGRES");
}

class PostgresSpool : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!conninfo())
      GTEST_SKIP() << "needs TERN_TEST_POSTGRES; run by tests/integration/test_postgres_spool.py";
    db_ = std::make_unique<pg::BlockingConnection>(conninfo());
  }

  std::unique_ptr<Spool> open(const std::string& node, OpenMode mode = OpenMode::kServe) {
    config::Config c;
    c.spool.backend = "postgres";
    c.spool.postgres = conninfo();
    c.cluster.node = node;
    c.cluster.lease_ms = 60'000;
    return open_spool(c, mode);
  }

  std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  std::uint64_t add(Spool& spool, bool local, const std::string& body) {
    NewMessage m;
    m.envelope.id = spool.next_id();
    m.envelope.sender = "chris@contoso.com";
    Recipient r;
    r.address = local ? "kate@example.test" : "bob@fabrikam.test";
    r.local = local;
    m.envelope.recipients.push_back(r);
    m.envelope.arrival_ms = m.envelope.next_attempt_ms = now_ms() - 1000;
    m.prefix = "Received: x\r\n";
    m.content = body;
    m.envelope.size = m.prefix.size() + m.content.size();
    EXPECT_EQ(spool
                  .apply_and_wait([&] {
                    SpoolChange c;
                    c.add.push_back(m);
                    return c;
                  }())
                  .status,
              SpoolStatus::kOk);
    return m.envelope.id;
  }

  std::vector<Claim> claim(Spool& spool, std::size_t local, std::size_t remote) {
    std::promise<std::vector<Claim>> p;
    auto f = p.get_future();
    spool.claim(local, remote, [&p](std::vector<Claim> c) { p.set_value(std::move(c)); });
    EXPECT_EQ(f.wait_for(30s), std::future_status::ready);
    return f.get();
  }

  void empty_queue() {
    for (const char* table : {"messages", "chunks", "deliveries"})
      sql(std::string("DELETE FROM ") + table);
  }

  std::string sql(const std::string& q) {
    auto r = db_->run({q, {}, false});
    return r.rows() ? r.string(0, 0) : "";
  }

  std::unique_ptr<pg::BlockingConnection> db_;
};

TEST_F(PostgresSpool, ClaimsByLaneOneNodeAtATime) {
  auto a = open("node-a");
  auto b = open("node-b");
  empty_queue();
  auto local = add(*a, true, "local body\r\n");
  auto remote = add(*b, false, "remote body\r\n");
  EXPECT_TRUE(a->shared());

  auto got = claim(*a, 5, 0);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, local);
  EXPECT_TRUE(got[0].local);
  EXPECT_EQ(got[0].action, "");
  EXPECT_GT(a->leases_until(), std::chrono::steady_clock::now());
  EXPECT_LE(a->leases_until(), std::chrono::steady_clock::now() + 60s);
  EXPECT_EQ(a->content(local).value(), "Received: x\r\nlocal body\r\n");
  EXPECT_EQ(a->find(local)->recipients.at(0).address, "kate@example.test");

  EXPECT_TRUE(claim(*b, 5, 0).empty());  // leased to a
  auto other = claim(*b, 0, 5);
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0].id, remote);
  EXPECT_FALSE(other[0].local);
  EXPECT_EQ(sql("SELECT lease_owner FROM messages WHERE id = " + std::to_string(remote)), "node-b");

  // Released (after the update written before it), b may claim it.
  auto env = *a->find(local);
  env.recipients[0].state = RecipientState::kDeferred;
  env.recipients[0].last_reply = "451 4.3.0 later";
  EXPECT_EQ(a->update(env).status, SpoolStatus::kOk);
  a->release(local);
  std::promise<void> applied;
  a->apply({}, [&](CommitResult) { applied.set_value(); });  // after the release
  applied.get_future().wait();
  EXPECT_EQ(sql("SELECT state FROM deliveries WHERE message_id = " + std::to_string(local)),
            "deferred");
  auto again = claim(*b, 5, 0);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(b->find(local)->recipients[0].last_reply, "451 4.3.0 later");
  a->close();
  b->close();
  EXPECT_EQ(sql("SELECT count(*) FROM messages WHERE lease_owner IS NOT NULL"), "0");
}

TEST_F(PostgresSpool, AWriteUnderALeaseTakenSinceIsSkipped) {
  auto a = open("node-a");
  auto b = open("node-b");
  empty_queue();
  auto id = add(*a, true, "x\r\n");
  ASSERT_EQ(claim(*a, 1, 0).size(), 1u);
  // a stalls past its lease; b takes the message over.
  sql("UPDATE messages SET lease_expiry = now() - interval '1 second'");
  ASSERT_EQ(claim(*b, 1, 0).size(), 1u);
  auto env = *a->find(id);
  env.recipients[0].state = RecipientState::kDelivered;
  EXPECT_EQ(a->update(env).status, SpoolStatus::kOk);  // counted as written…
  EXPECT_EQ(a->remove(id).status, SpoolStatus::kOk);
  EXPECT_EQ(sql("SELECT state FROM deliveries WHERE message_id = " + std::to_string(id)),
            "queued");  // …but not written: b holds it
  EXPECT_EQ(sql("SELECT count(*) FROM messages"), "1");
  EXPECT_EQ(b->remove(id).status, SpoolStatus::kOk);
  EXPECT_EQ(sql("SELECT count(*) FROM messages"), "0");
  EXPECT_EQ(sql("SELECT count(*) FROM chunks"), "0");
}

TEST_F(PostgresSpool, ARestartedNodeFreesWhatItsEarlierProcessHeld) {
  auto a = open("node-a");
  empty_queue();
  auto id = add(*a, true, "x\r\n");
  a->close();
  // node-r died holding it (its lease would last an hour more).
  sql("UPDATE messages SET lease_owner = 'node-r', lease_expiry = now() + interval '1 hour'");
  auto b = open("node-b");
  EXPECT_TRUE(claim(*b, 1, 0).empty());
  auto r = open("node-r");  // the same node, started again
  EXPECT_EQ(sql("SELECT count(*) FROM messages WHERE lease_owner IS NOT NULL"), "0");
  auto got = claim(*b, 1, 0);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, id);
}

TEST_F(PostgresSpool, TakeLeasesOrRecordsTheAction) {
  auto a = open("node-a");
  empty_queue();
  auto id = add(*a, false, "x\r\n");
  auto admin = open("node-a", OpenMode::kAdmin);
  EXPECT_EQ(admin->take(id + 999999, "delete"), TakeResult::kMissing);
  ASSERT_EQ(claim(*a, 0, 1).size(), 1u);
  EXPECT_EQ(admin->take(id, "bounce"), TakeResult::kLeased);
  a->release(id);
  a->apply({}, [](CommitResult) {});
  // The recorded action makes the message claimable even when not due.
  sql("UPDATE messages SET next_attempt = next_attempt + 3600000");
  std::vector<Claim> got;
  for (int i = 0; i < 100 && got.empty(); ++i) got = claim(*a, 0, 1);  // the release is async
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].action, "bounce");
  a->close();  // releases
  EXPECT_EQ(admin->take(id, "delete"), TakeResult::kTaken);
  EXPECT_EQ(admin->content(id).value(), "Received: x\r\nx\r\n");
  EXPECT_EQ(admin->remove(id).status, SpoolStatus::kOk);
  EXPECT_FALSE(admin->find(id));
}

TEST_F(PostgresSpool, NewMailWakesEveryNodeAndIdsAreUnique) {
  auto a = open("node-a");
  auto b = open("node-b");
  std::mutex mu;
  std::condition_variable cv;
  int wakes = 0;
  b->on_queued([&] {
    std::lock_guard lock(mu);
    ++wakes;
    cv.notify_all();
  });
  {
    std::unique_lock lock(mu);  // once when LISTEN starts
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return wakes >= 1; }));
  }
  int before = wakes;
  add(*a, true, "x\r\n");
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, 30s, [&] { return wakes > before; }));
  }
  std::set<std::uint64_t> ids;
  for (int i = 0; i < 3000; ++i) {
    ids.insert(a->next_id());
    ids.insert(b->next_id());
  }
  EXPECT_EQ(ids.size(), 6000u);
}

// Commits that several changes share: every new message of the batch goes in
// one statement per table, and each row comes back as it was written.
TEST_F(PostgresSpool, ABatchOfNewMailIsWrittenRowByRow) {
  empty_queue();
  auto a = open("node-a");
  std::vector<NewMessage> messages;
  for (int i = 0; i < 40; ++i) {
    NewMessage m;
    m.envelope.id = a->next_id();
    m.envelope.sender = "chris@contoso.com";
    for (int k = 0; k <= i % 3; ++k) {
      Recipient r;
      r.address = "r" + std::to_string(k) + "\"\\{x}@example.test";
      r.local = i % 2 == 0;
      r.attempts = static_cast<std::uint32_t>(k);
      r.last_reply = k == 1 ? "451 4.7.1 try \"later\"" : "";
      if (k == 2) r.state = RecipientState::kDelivered;
      m.envelope.recipients.push_back(r);
    }
    if (i % 5 == 4) m.envelope.held = "held for a test";
    m.envelope.arrival_ms = m.envelope.next_attempt_ms = now_ms() + i;
    m.prefix = i % 7 == 0 ? "" : "Received: x\r\n";
    // Bytes of every value, and one message larger than a chunk row.
    m.content = std::string("\0\xff\\x\r\n", 7) + std::to_string(i) + "\r\n";
    if (i == 3) m.content += std::string(600 * 1024, 'z');
    if (i == 10) m.content.clear();
    m.envelope.size = m.prefix.size() + m.content.size();
    messages.push_back(m);
  }
  // Applied without waiting, so that the committer takes several at once.
  std::vector<std::future<CommitResult>> results;
  for (const auto& m : messages) {
    auto p = std::make_shared<std::promise<CommitResult>>();
    results.push_back(p->get_future());
    SpoolChange c;
    c.add.push_back(m);
    a->apply(std::move(c), [p](CommitResult r) { p->set_value(std::move(r)); });
  }
  for (auto& f : results) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    EXPECT_EQ(f.get().status, SpoolStatus::kOk);
  }
  EXPECT_EQ(sql("SELECT count(*) FROM messages"), "40");
  EXPECT_EQ(sql("SELECT count(*) FROM deliveries"), "79");  // 14×1 + 13×2 + 13×3
  for (const auto& m : messages) {
    auto id = std::to_string(m.envelope.id);
    auto found = a->find(m.envelope.id);
    ASSERT_TRUE(found) << id;
    EXPECT_EQ(found->recipients.size(), m.envelope.recipients.size());
    EXPECT_EQ(a->content(m.envelope.id), m.prefix + m.content) << id;
    EXPECT_EQ(sql("SELECT coalesce(held, '-') FROM messages WHERE id = " + id),
              m.envelope.held.empty() ? "-" : m.envelope.held);
    EXPECT_EQ(sql("SELECT local FROM messages WHERE id = " + id),
              m.envelope.recipients[0].local ? "t" : "f");
    for (std::size_t k = 0; k < m.envelope.recipients.size(); ++k) {
      const auto& r = m.envelope.recipients[k];
      auto row = "FROM deliveries WHERE message_id = " + id + " AND idx = " + std::to_string(k);
      EXPECT_EQ(sql("SELECT address " + row), r.address);
      EXPECT_EQ(sql("SELECT state " + row), state_name(r.state));
      EXPECT_EQ(sql("SELECT attempts " + row), std::to_string(r.attempts));
      EXPECT_EQ(sql("SELECT last_reply " + row), r.last_reply);
    }
  }
  EXPECT_EQ(sql("SELECT max(length(data)) FROM chunks"), std::to_string(256 * 1024));
  EXPECT_EQ(sql("SELECT count(*) FROM chunks WHERE message_id = " +
                std::to_string(messages[3].envelope.id)),
            "4");  // the prefix, then 600 KB in rows of 256 KB
}

// A batch that fails (a message already written, one whose streamed parts are
// missing) is written change by change: the message written before is written
// again, the one without its parts fails alone.
TEST_F(PostgresSpool, AFailedBatchIsWrittenChangeByChange) {
  empty_queue();
  auto a = open("node-a");
  auto again = add(*a, true, "first\r\n");
  auto make = [&](std::uint64_t id, std::uint32_t parts) {
    NewMessage m;
    m.envelope.id = id;
    m.envelope.sender = "chris@contoso.com";
    Recipient r;
    r.address = "kate@example.test";
    r.local = true;
    m.envelope.recipients.push_back(r);
    m.envelope.arrival_ms = m.envelope.next_attempt_ms = now_ms();
    m.content = "body " + std::to_string(id) + "\r\n";
    m.parts = parts;
    SpoolChange c;
    c.add.push_back(m);
    return c;
  };
  auto good = a->next_id();
  auto partless = a->next_id();
  std::vector<std::future<CommitResult>> results;
  for (auto c : {make(again, 0), make(good, 0), make(partless, 2)}) {
    auto p = std::make_shared<std::promise<CommitResult>>();
    results.push_back(p->get_future());
    a->apply(std::move(c), [p](CommitResult r) { p->set_value(std::move(r)); });
  }
  std::vector<SpoolStatus> status;
  for (auto& f : results) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    status.push_back(f.get().status);
  }
  EXPECT_EQ(status[0], SpoolStatus::kOk);
  EXPECT_EQ(status[1], SpoolStatus::kOk);
  EXPECT_EQ(status[2], SpoolStatus::kError);
  EXPECT_EQ(a->content(again), "body " + std::to_string(again) + "\r\n");
  EXPECT_EQ(a->content(good), "body " + std::to_string(good) + "\r\n");
  EXPECT_FALSE(a->find(partless));
  EXPECT_EQ(sql("SELECT count(*) FROM messages"), "2");
  EXPECT_EQ(sql("SELECT count(*) FROM deliveries"), "2");
}

}  // namespace
}  // namespace tern::queue
