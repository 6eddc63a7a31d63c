// The queue scheduler (queue/scheduler.h) with an injected clock, a scripted
// deliverer and a spool in memory: retries at the configured waits, expiry,
// delay and success notices, outcomes durable per group as each ends, a failed
// status write written again without a second delivery, and the
// administrator's actions racing an attempt (delivered at most once, never
// brought back after a removal).
#include <gtest/gtest.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "config/config.h"
#include "delivery/deliverer.h"
#include "log/tracking_log.h"
#include "queue/scheduler.h"
#include "queue/spool.h"
#include "session_harness.h"

namespace tern::queue {
namespace {

using delivery::Outcome;
using delivery::RecipientOutcome;
using delivery::Scope;

constexpr std::int64_t kT0 = 1'800'000'000'000;  // Unix ms
constexpr std::int64_t kSecond = 1'000;
constexpr std::int64_t kMinute = 60 * kSecond;

// A spool in memory that writes like the RocksDB one: an update is a put (it
// would bring back a removed message), writes are applied in the order given,
// and a test can hold them back (a slow disk) or make the next ones fail.
class TestSpool final : public Spool {
 public:
  std::uint64_t next_id() override { return next_id_++; }
  bool has_room(std::uint64_t) override { return true; }
  void apply(SpoolChange change, CommitCallback done) override {
    ++applies;
    held_.push_back({std::move(change), std::move(done)});
    if (!hold_writes) release();
  }
  CommitResult store_part(std::uint64_t, std::uint32_t, std::string_view) override { return {}; }
  std::vector<Envelope> list() override {
    if (unavailable) throw SpoolUnavailable("spool closed (test)");
    std::vector<Envelope> out;
    for (const auto& [id, m] : messages_) out.push_back(m.first);
    return out;
  }
  std::optional<Envelope> find(std::uint64_t id) override {
    if (unavailable) throw SpoolUnavailable("spool closed (test)");
    auto it = messages_.find(id);
    if (it == messages_.end()) return std::nullopt;
    return it->second.first;
  }
  std::optional<std::string> content(std::uint64_t id) override {
    if (unavailable) throw SpoolUnavailable("spool closed (test)");
    auto it = messages_.find(id);
    if (it == messages_.end()) return std::nullopt;
    return it->second.second;
  }
  void close() override {}

  // A shared spool (shared = true): leases as PostgreSQL does, by the test's clock.
  bool shared() const override { return shared_mode; }
  void claim(std::size_t local, std::size_t remote, ClaimCallback done) override {
    ++claims;
    std::vector<Claim> got;
    for (auto& [id, m] : messages_) {
      const Envelope& e = m.first;
      bool action = actions.count(id) > 0;
      if (leased.count(id) || other_node.count(id) || !e.held.empty()) continue;
      if (!action && e.next_attempt_ms > *clock) continue;
      bool is_local = true;
      for (const auto& r : e.recipients) is_local = is_local && (r.done() || r.local);
      std::size_t& room = is_local ? local : remote;
      if (room == 0) continue;
      --room;
      leased.insert(id);
      got.push_back({id, is_local, action ? actions[id] : ""});
      actions.erase(id);
    }
    done(std::move(got));
  }
  void release(std::uint64_t id) override { leased.erase(id); }
  void on_queued(std::function<void()> wake) override { notify = std::move(wake); }

  // Applies every held write, in order.
  void release() {
    while (!held_.empty()) {
      auto [change, done] = std::move(held_.front());
      held_.pop_front();
      CommitResult result;
      if (fail_next > 0) {
        --fail_next;
        result = {SpoolStatus::kNoSpace, "no space left on device (test)"};
      } else {
        for (auto& m : change.add) messages_[m.envelope.id] = {m.envelope, m.prefix + m.content};
        for (auto& e : change.update) {
          auto& slot = messages_[e.id];  // a put, as RocksDB does
          slot.first = e;
        }
        for (auto id : change.remove) messages_.erase(id);
      }
      done(result);
    }
  }
  std::size_t held() const { return held_.size(); }

  bool shared_mode = false;
  const std::int64_t* clock = nullptr;
  std::set<std::uint64_t> leased;      // by this node
  std::set<std::uint64_t> other_node;  // leased by another node
  std::map<std::uint64_t, std::string> actions;
  std::function<void()> notify;
  int claims = 0;
  bool hold_writes = false;
  bool unavailable = false;  // reads throw SpoolUnavailable (closed after a write error)
  int fail_next = 0;
  int applies = 0;

 private:
  std::uint64_t next_id_ = 5000;
  std::map<std::uint64_t, std::pair<Envelope, std::string>> messages_;
  std::deque<std::pair<SpoolChange, CommitCallback>> held_;
};

// Delivers by script: local recipients as one group, then each remote domain
// in turn; a domain in `slow` waits until open() before it ends.
class FakeDeliverer final : public delivery::Deliverer {
 public:
  explicit FakeDeliverer(asio::io_context& io) : gate_(io, asio::steady_timer::time_point::max()) {}

  net::awaitable<void> deliver(const Envelope& envelope, std::string_view content,
                               const std::vector<std::size_t>& recipients, bool may_be_repeat,
                               delivery::GroupReport report) override {
    ++calls;
    repeats.push_back(may_be_repeat);
    seen.push_back({envelope, std::string(content)});
    std::vector<std::pair<std::string, std::vector<std::size_t>>> groups;
    std::vector<std::size_t> local;
    std::map<std::string, std::vector<std::size_t>> remote;
    for (auto i : recipients) {
      const auto& a = envelope.recipients[i].address;
      if (envelope.recipients[i].local)
        local.push_back(i);
      else
        remote[a.substr(a.find('@') + 1)].push_back(i);
    }
    if (!local.empty()) groups.push_back({"", local});
    for (auto& [domain, group] : remote) groups.push_back({domain, group});
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (slow.count(groups[g].first) && !opened_) {
        ++waiting;
        co_await gate_.async_wait(net::use_tuple);
        --waiting;
      }
      std::vector<RecipientOutcome> out;
      for (auto i : groups[g].second) {
        const auto& address = envelope.recipients[i].address;
        Outcome o = script ? script(address)
                           : Outcome::delivered_by(smtp::Reply(250, "2.0.0", "OK"), "fake");
        if (o.delivered()) ++delivered[address];
        out.push_back({i, o});
      }
      report(std::move(out), g + 1 == groups.size());
      if (throw_after_first_group) throw std::runtime_error("scripted failure");
    }
  }
  void open() {
    opened_ = true;
    gate_.cancel();
  }
  // Notices delivered (an envelope from <>) whose content holds text.
  int notices(std::string_view text) const {
    int n = 0;
    for (const auto& [env, content] : seen)
      if (env.is_dsn && content.find(text) != std::string::npos) ++n;
    return n;
  }

  std::function<Outcome(const std::string& address)> script;
  std::set<std::string> slow;
  std::map<std::string, int> delivered;
  std::vector<std::pair<Envelope, std::string>> seen;
  std::vector<bool> repeats;  // may_be_repeat of each call
  int calls = 0;
  int waiting = 0;
  bool throw_after_first_group = false;

 private:
  asio::steady_timer gate_;
  bool opened_ = false;
};

Outcome deferred() {
  auto o = Outcome::temporary_failure(Scope::kRecipient, smtp::Reply(451, "4.3.0", "Try later"),
                                      "mx.fabrikam.test[192.0.2.7]:25");
  o.remote = true;
  return o;
}

Outcome ok() {
  return Outcome::delivered_by(smtp::Reply(250, "2.0.0", "OK"), "fake");
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> serial{0};
    logs = std::filesystem::temp_directory_path() /
           ("tern-scheduler-test-" + std::to_string(::getpid()) + "-" + std::to_string(++serial));
    tracking = std::make_unique<log::TrackingLog>(logs);
    config.queue.retry_ms = {1 * 60'000, 5 * 60'000};
    config.queue.delay_notice_ms = 4 * 3'600'000ull;
    config.queue.expire_ms = 48 * 3'600'000ull;
  }
  void TearDown() override {
    scheduler.reset();
    tracking.reset();
    std::error_code ec;
    std::filesystem::remove_all(logs, ec);
  }

  void start() {
    scheduler = std::make_unique<Scheduler>(io.get_executor(), config, spool, *tracking, deliverer,
                                            [this] { return now; });
    scheduler->load();
    scheduler->start();
    settle();
  }
  // Runs every handler that is ready, until nothing is (bounded).
  void settle() {
    int idle = 0;
    for (int i = 0; i < 1000 && idle < 3; ++i) {
      io.restart();
      idle = io.poll() == 0 ? idle + 1 : 0;
    }
  }
  void advance(std::int64_t ms) {
    now += ms;
    scheduler->wake();
    settle();
  }
  // A message in the spool, due at `due` (now when 0); told to the scheduler
  // when it runs.
  std::uint64_t queue(std::vector<std::string> to, std::uint8_t notify = 0, std::int64_t due = 0) {
    NewMessage m;
    auto& e = m.envelope;
    e.id = spool.next_id();
    e.message_id = "<" + std::to_string(e.id) + "@example.test>";
    e.sender = "chris@example.test";
    e.arrival_ms = now;
    e.next_attempt_ms = due ? due : now;
    for (auto& a : to) {
      Recipient r;
      r.address = a;
      r.local = a.ends_with("@example.test");
      r.notify = notify;
      e.recipients.push_back(r);
    }
    m.content = "Subject: test\r\n\r\nHello\r\n";
    e.size = m.content.size();
    bool hold = std::exchange(spool.hold_writes, false);
    spool.commit(std::move(m), [](CommitResult) {});
    spool.hold_writes = hold;
    if (scheduler) {
      scheduler->enqueue(e.id);
      settle();
    }
    return e.id;
  }
  RecipientState state(std::uint64_t id, std::size_t i) {
    return spool.find(id).value().recipients.at(i).state;
  }
  // Runs an administrator's action; its reply once it has ended.
  std::shared_ptr<std::optional<std::string>> admin(net::awaitable<std::string> action) {
    auto reply = std::make_shared<std::optional<std::string>>();
    asio::co_spawn(io, std::move(action),
                   [reply](std::exception_ptr e, std::string r) { *reply = e ? "exception" : r; });
    return reply;
  }

  asio::io_context io;
  config::Config config = config::parse(test::test_config_text(), "/tmp/tern-scheduler-test.toml");
  TestSpool spool;
  std::filesystem::path logs;
  std::unique_ptr<log::TrackingLog> tracking;
  FakeDeliverer deliverer{io};
  std::int64_t now = kT0;
  std::unique_ptr<Scheduler> scheduler;
};

TEST_F(SchedulerTest, DeliversAQueuedMessageAndRemovesIt) {
  auto id = queue({"kate@example.test"});
  start();
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 1);
  EXPECT_FALSE(spool.find(id));
}

// Only the first attempt of a message this process accepted may skip looking
// for an earlier copy: a message loaded at start, or a second attempt, may be
// a repeat of a delivery a crash interrupted.
TEST_F(SchedulerTest, OnlyTheFirstAttemptOfANewMessageIsNotARepeat) {
  deliverer.script = [](const std::string&) { return deferred(); };
  auto loaded = queue({"kate@example.test"});
  start();
  ASSERT_EQ(deliverer.repeats, std::vector<bool>{true});  // loaded at start
  auto fresh = queue({"kate@example.test"});
  ASSERT_EQ(deliverer.repeats, (std::vector<bool>{true, false}));  // accepted here
  EXPECT_EQ(deliverer.seen.back().first.id, fresh);
  advance(1 * kMinute);
  ASSERT_EQ(deliverer.calls, 4);
  EXPECT_TRUE(deliverer.repeats[2]);  // second attempts
  EXPECT_TRUE(deliverer.repeats[3]);
  EXPECT_NE(loaded, fresh);
}

TEST_F(SchedulerTest, RetriesAfter4xxAtTheConfiguredWaits) {
  deliverer.script = [](const std::string&) { return deferred(); };
  auto id = queue({"bob@fabrikam.test"});
  start();
  ASSERT_EQ(deliverer.calls, 1);
  EXPECT_EQ(state(id, 0), RecipientState::kDeferred);
  EXPECT_EQ(spool.find(id)->next_attempt_ms, kT0 + 1 * kMinute);
  advance(1 * kMinute - kSecond);
  EXPECT_EQ(deliverer.calls, 1);
  advance(kSecond);
  EXPECT_EQ(deliverer.calls, 2);
  EXPECT_EQ(spool.find(id)->next_attempt_ms, now + 5 * kMinute);
  advance(5 * kMinute - kSecond);
  EXPECT_EQ(deliverer.calls, 2);
  advance(kSecond);
  EXPECT_EQ(deliverer.calls, 3);
  // The last wait repeats.
  EXPECT_EQ(spool.find(id)->next_attempt_ms, now + 5 * kMinute);
  EXPECT_EQ(spool.find(id)->recipients[0].attempts, 3u);
}

TEST_F(SchedulerTest, ExpiryFailsTheRecipientWithAFailureNotice) {
  config.queue.expire_ms = 3 * kMinute;
  deliverer.script = [](const std::string& a) {
    return a == "bob@fabrikam.test" ? deferred() : ok();
  };
  auto id = queue({"bob@fabrikam.test"});
  start();
  advance(1 * kMinute);  // second attempt, deferred again; the next is 5 minutes later
  ASSERT_EQ(deliverer.calls, 2);
  advance(5 * kMinute);  // expired: no delivery, a failure notice instead
  EXPECT_FALSE(spool.find(id));
  EXPECT_EQ(deliverer.notices("Action: failed"), 1);
  EXPECT_EQ(deliverer.notices("5.4.7"), 1);
  EXPECT_EQ(deliverer.calls, 3);  // the notice only
  EXPECT_EQ(deliverer.seen.back().first.recipients[0].address, "chris@example.test");
}

TEST_F(SchedulerTest, DelayNoticeIsSentOnce) {
  config.queue.delay_notice_ms = 3 * kMinute;
  deliverer.script = [](const std::string& a) {
    return a == "bob@fabrikam.test" ? deferred() : ok();
  };
  auto id = queue({"bob@fabrikam.test"});
  start();
  advance(1 * kMinute);
  EXPECT_EQ(deliverer.notices("Action: delayed"), 0);
  advance(5 * kMinute);  // past delay_notice
  EXPECT_EQ(deliverer.notices("Action: delayed"), 1);
  EXPECT_TRUE(spool.find(id)->recipients[0].delay_notified);
  for (int i = 0; i < 3; ++i) advance(5 * kMinute);
  EXPECT_EQ(deliverer.calls, 2 + 1 + 1 + 3);  // five attempts and one notice
  EXPECT_EQ(deliverer.notices("Action: delayed"), 1);
}

TEST_F(SchedulerTest, SuccessNoticeOnlyForNotifySuccess) {
  queue({"kate@example.test"}, smtp::notify::kSuccess);
  queue({"postmaster@example.test"});
  start();
  EXPECT_EQ(deliverer.notices("Action: delivered"), 1);
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 1);
  EXPECT_EQ(deliverer.delivered["postmaster@example.test"], 1);
  EXPECT_TRUE(spool.list().empty());
}

TEST_F(SchedulerTest, AMessageWithOnlyLocalRecipientsCostsOneWritePerAttempt) {
  queue({"kate@example.test", "postmaster@example.test"});
  spool.applies = 0;
  start();
  EXPECT_EQ(spool.applies, 1);
  EXPECT_TRUE(spool.list().empty());
}

// The status write fails (a full disk): what was delivered is kept in memory
// and written later; the recipient is not delivered again meanwhile.
TEST_F(SchedulerTest, AFailedStatusWriteIsWrittenAgainWithoutASecondDelivery) {
  auto id = queue({"kate@example.test"}, smtp::notify::kSuccess);
  spool.fail_next = 2;
  start();
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 1);
  ASSERT_TRUE(spool.find(id));  // not yet written
  for (int i = 0; i < 10; ++i) advance(1 * kMinute);
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 1);
  EXPECT_FALSE(spool.find(id));
  EXPECT_EQ(deliverer.notices("Action: delivered"), 1);
}

TEST_F(SchedulerTest, AFailedGroupWriteKeepsItsNoticeAndDeliversNothingTwice) {
  deliverer.script = [](const std::string& a) {
    return a == "bob@fabrikam.test" ? deferred() : ok();
  };
  deliverer.slow = {"fabrikam.test"};
  auto id = queue({"kate@example.test", "bob@fabrikam.test"}, smtp::notify::kSuccess);
  spool.fail_next = 1;  // the local group's write
  start();
  deliverer.open();
  settle();
  // The last write carried the whole envelope; the local notice goes with a later one.
  EXPECT_EQ(state(id, 0), RecipientState::kDelivered);
  EXPECT_EQ(state(id, 1), RecipientState::kDeferred);
  for (int i = 0; i < 3; ++i) advance(1 * kMinute);
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 1);
  EXPECT_EQ(deliverer.notices("Action: delivered"), 1);
}

// A crash while a slow remote domain is still running: what the spool holds
// then is what a restart would see.
TEST_F(SchedulerTest, ALocalOutcomeIsDurableWhileARemoteDomainStillRuns) {
  deliverer.slow = {"fabrikam.test"};
  auto id = queue({"kate@example.test", "bob@fabrikam.test", "ann@contoso.test"});
  start();
  ASSERT_EQ(deliverer.waiting, 1);
  auto env = spool.find(id).value();
  EXPECT_EQ(env.recipients[0].state, RecipientState::kDelivered);
  EXPECT_EQ(env.recipients[0].attempts, 1u);
  EXPECT_EQ(env.recipients[1].state, RecipientState::kQueued);
  EXPECT_EQ(env.recipients[2].state, RecipientState::kRelayed);  // contoso.test ended first
  deliverer.open();
  settle();
  EXPECT_FALSE(spool.find(id));
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 1);
  EXPECT_EQ(deliverer.delivered["bob@fabrikam.test"], 1);
}

TEST_F(SchedulerTest, GroupsEndingTogetherLeaveTheNewestEnvelope) {
  deliverer.script = [](const std::string& a) {
    return a == "ann@contoso.test" ? deferred() : ok();
  };
  spool.hold_writes = true;  // the writes of every group are under way at once
  auto id = queue({"kate@example.test", "bob@fabrikam.test", "ann@contoso.test"});
  start();
  EXPECT_EQ(spool.held(), 3u);
  spool.hold_writes = false;
  spool.release();
  settle();
  auto env = spool.find(id).value();
  EXPECT_EQ(env.recipients[0].state, RecipientState::kDelivered);
  EXPECT_EQ(env.recipients[1].state, RecipientState::kRelayed);
  EXPECT_EQ(env.recipients[2].state, RecipientState::kDeferred);
  EXPECT_EQ(env.next_attempt_ms, now + 1 * kMinute);
}

// `tern queue delete` while the message's attempt is due: the removal owns the
// message, no attempt starts on it, and nothing brings it back.
TEST_F(SchedulerTest, DeleteRacingADueAttemptNeitherDeliversNorResurrects) {
  deliverer.script = [](const std::string& a) {
    return a == "bob@fabrikam.test" ? deferred() : ok();
  };
  auto id = queue({"kate@example.test", "bob@fabrikam.test"}, 0, kT0 + kMinute);
  start();
  spool.hold_writes = true;  // the removal takes a while on disk
  auto reply = admin(scheduler->remove(id));
  advance(kMinute);  // the attempt is due meanwhile
  spool.hold_writes = false;
  spool.release();
  settle();
  ASSERT_TRUE(reply->has_value());
  EXPECT_EQ(**reply, "ok: " + std::to_string(id) + " deleted (no notice sent)");
  EXPECT_EQ(deliverer.calls, 0);
  EXPECT_FALSE(spool.find(id));
  advance(10 * kMinute);
  EXPECT_EQ(deliverer.calls, 0);
  EXPECT_FALSE(spool.find(id));
}

TEST_F(SchedulerTest, BounceRacingADueAttemptReturnsWhatWasNotDelivered) {
  auto id = queue({"kate@example.test", "bob@fabrikam.test"}, 0, kT0 + kMinute);
  start();
  spool.hold_writes = true;
  auto reply = admin(scheduler->bounce(id));
  advance(kMinute);
  spool.hold_writes = false;
  spool.release();
  settle();
  ASSERT_TRUE(reply->has_value());
  EXPECT_EQ(**reply, "ok: " + std::to_string(id) + " returned to chris@example.test");
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 0);  // the notice says it was not
  EXPECT_EQ(deliverer.notices("Action: failed"), 1);
  EXPECT_FALSE(spool.find(id));
  advance(10 * kMinute);
  EXPECT_FALSE(spool.find(id));
}

TEST_F(SchedulerTest, DeleteWhileRunningEndsAfterTheAttemptAndNeverResurrects) {
  deliverer.slow = {"fabrikam.test"};
  auto id = queue({"kate@example.test", "bob@fabrikam.test"});
  start();
  auto reply = admin(scheduler->remove(id));
  settle();
  ASSERT_TRUE(reply->has_value());
  EXPECT_EQ(**reply,
            "ok: " + std::to_string(id) + " will be deleted when its current attempt ends");
  deliverer.open();
  settle();
  EXPECT_FALSE(spool.find(id));
  advance(10 * kMinute);
  EXPECT_FALSE(spool.find(id));
  EXPECT_EQ(deliverer.calls, 1);
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 1);
}

// The delete comes after the attempt's last write went out, before it is on
// disk: it is still done.
TEST_F(SchedulerTest, DeleteWhileTheLastWriteIsUnderWayIsStillDone) {
  deliverer.script = [](const std::string& a) {
    return a == "bob@fabrikam.test" ? deferred() : ok();
  };
  auto id = queue({"kate@example.test", "bob@fabrikam.test"});
  spool.hold_writes = true;
  start();
  ASSERT_EQ(deliverer.calls, 1);
  auto reply = admin(scheduler->remove(id));
  settle();
  spool.hold_writes = false;
  spool.release();
  settle();
  ASSERT_TRUE(reply->has_value());
  EXPECT_FALSE(spool.find(id));
  advance(10 * kMinute);
  EXPECT_FALSE(spool.find(id));
  EXPECT_EQ(deliverer.calls, 1);
}

TEST_F(SchedulerTest, TwoActionsOnOneMessageDoNotOverlap) {
  auto id = queue({"bob@fabrikam.test"}, 0, kT0 + kMinute);
  start();
  spool.hold_writes = true;
  auto first = admin(scheduler->bounce(id));
  auto second = admin(scheduler->remove(id));
  settle();
  ASSERT_TRUE(second->has_value());
  EXPECT_NE((*second)->find("another queue command"), std::string::npos) << **second;
  spool.hold_writes = false;
  spool.release();
  settle();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->rfind("ok:", 0), 0u) << **first;
  EXPECT_FALSE(spool.find(id));
}

// tern fails inside while delivering: the group that ended is recorded, the
// message is held, and its release does not deliver that group again.
TEST_F(SchedulerTest, AFailureInsideTernHoldsTheMessageWithWhatWasDelivered) {
  deliverer.throw_after_first_group = true;
  auto id = queue({"kate@example.test", "bob@fabrikam.test"});
  start();
  auto env = spool.find(id).value();
  EXPECT_EQ(env.recipients[0].state, RecipientState::kDelivered);
  EXPECT_EQ(env.recipients[1].state, RecipientState::kQueued);
  EXPECT_NE(env.held.find("scripted failure"), std::string::npos) << env.held;
  advance(10 * kMinute);
  EXPECT_EQ(deliverer.calls, 1);  // held: not tried again
  deliverer.throw_after_first_group = false;
  auto reply = admin(scheduler->retry(id));
  settle();
  ASSERT_TRUE(reply->has_value());
  EXPECT_EQ((*reply)->rfind("ok:", 0), 0u) << **reply;
  EXPECT_FALSE(spool.find(id));
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 1);
  EXPECT_EQ(deliverer.delivered["bob@fabrikam.test"], 1);
}

// tern_queue_messages (log/metrics.h) from the scheduler's index: due and
// waiting, deferred to a later time, held; the delivery counters move with
// the outcomes written.
TEST_F(SchedulerTest, QueueCountsFollowTheIndex) {
  auto& m = log::metrics();
  auto deferred0 = m.deferred.value();
  auto maildir0 = m.delivered(log::Via::kMaildir).value();
  deliverer.script = [](const std::string&) { return deferred(); };
  queue({"bob@fabrikam.test", "dan@fabrikam.test"});
  queue({"eve@fabrikam.test"}, 0, kT0 + 10 * kMinute);
  start();
  auto c = scheduler->queue_counts();
  EXPECT_EQ(c.queued, 0);
  EXPECT_EQ(c.deferred, 2);  // one retried at +1 min, one first due at +10 min
  EXPECT_EQ(c.active, 0);
  EXPECT_EQ(c.held, 0);
  EXPECT_EQ(m.deferred.value() - deferred0, 2u);  // per recipient

  now += 2 * kMinute;  // the first is due again; the scheduler has not looked yet
  c = scheduler->queue_counts();
  EXPECT_EQ(c.queued, 1);
  EXPECT_EQ(c.deferred, 1);

  deliverer.script = nullptr;
  scheduler->wake();
  settle();  // the first is delivered now
  c = scheduler->queue_counts();
  EXPECT_EQ(c.queued + c.deferred + c.active, 1);
  deliverer.throw_after_first_group = true;  // tern fails inside: held
  auto held = queue({"kate@example.test", "bob@fabrikam.test"});
  c = scheduler->queue_counts();
  EXPECT_EQ(c.held, 1);
  EXPECT_EQ(c.quarantined, 0);
  EXPECT_EQ(m.delivered(log::Via::kMaildir).value() - maildir0, 1u);
  deliverer.throw_after_first_group = false;
  auto reply = admin(scheduler->retry(held));
  settle();
  ASSERT_TRUE(reply->has_value());
  EXPECT_EQ(scheduler->queue_counts().held, 0);
}

// The spool cannot be read for a while (closed after a write error, not yet
// reopened): the due message is neither dropped nor held, the administrator's
// actions answer an error and change nothing, and once the spool is back the
// message is delivered once.
TEST_F(SchedulerTest, AnUnreadableSpoolPostponesTheAttemptWithoutDroppingTheMessage) {
  auto id = queue({"kate@example.test"}, 0, kT0 + kMinute);
  start();
  spool.unavailable = true;
  int applies = spool.applies;
  advance(kMinute);
  EXPECT_EQ(deliverer.calls, 0);
  EXPECT_GT(spool.applies, applies);  // a write asks the spool to reopen
  auto removed = admin(scheduler->remove(id));
  settle();
  ASSERT_TRUE(removed->has_value());
  EXPECT_EQ((*removed)->rfind("error:", 0), 0u) << **removed;
  auto bounced = admin(scheduler->bounce(id));
  settle();
  ASSERT_TRUE(bounced->has_value());
  EXPECT_EQ((*bounced)->rfind("error:", 0), 0u) << **bounced;
  advance(10 * kSecond);  // still unreadable: tried again, with backoff
  EXPECT_EQ(deliverer.calls, 0);
  spool.unavailable = false;
  ASSERT_TRUE(spool.find(id));
  EXPECT_TRUE(spool.find(id)->held.empty());
  advance(kMinute);
  EXPECT_EQ(deliverer.delivered["kate@example.test"], 1);
  EXPECT_FALSE(spool.find(id));
}

// SIGTERM: stop() lets the running attempt end and record what it delivered.
TEST_F(SchedulerTest, StopWaitsForTheRunningAttemptAndItsWrites) {
  deliverer.slow = {"fabrikam.test"};
  auto id = queue({"kate@example.test", "bob@fabrikam.test"});
  start();
  bool idle = false;
  scheduler->stop([&idle] { idle = true; });
  settle();
  EXPECT_FALSE(idle);
  EXPECT_EQ(state(id, 0), RecipientState::kDelivered);
  deliverer.open();
  settle();
  EXPECT_TRUE(idle);
  EXPECT_FALSE(spool.find(id));
}

}  // namespace
}  // namespace tern::queue

namespace tern::queue {
namespace {

// A node of a cluster (shared spool, SPEC §6): only what it leased is
// delivered, each message is released when its attempt ends, the lanes bound
// how much it claims, and an administrator's action recorded while another
// node held the message is carried out by the node that claims it next.
class SharedSchedulerTest : public SchedulerTest {
 protected:
  void SetUp() override {
    SchedulerTest::SetUp();
    spool.shared_mode = true;
    spool.clock = &now;
  }
  void notify() {
    ASSERT_TRUE(spool.notify);
    spool.notify();
    settle();
  }
};

TEST_F(SharedSchedulerTest, ClaimsWhatIsDueAndReleasesItWhenTheAttemptEnds) {
  deliverer.script = [](const std::string&) { return deferred(); };
  auto id = queue({"bob@fabrikam.test"});
  start();
  EXPECT_EQ(deliverer.calls, 1);
  EXPECT_TRUE(spool.leased.empty());  // released: the next attempt may run on any node
  EXPECT_EQ(spool.find(id)->next_attempt_ms, now + 1 * kMinute);
  EXPECT_EQ(deliverer.repeats, std::vector<bool>{true});  // another node may have tried it
  advance(30 * kSecond);
  notify();
  EXPECT_EQ(deliverer.calls, 1);  // not due yet
  advance(30 * kSecond);
  notify();
  EXPECT_EQ(deliverer.calls, 2);
}

TEST_F(SharedSchedulerTest, AMessageAnotherNodeHoldsIsNotDeliveredHere) {
  auto id = queue({"kate@example.test"});
  spool.other_node.insert(id);
  start();
  auto second = queue({"kate@example.test"});
  EXPECT_EQ(deliverer.calls, 1);
  EXPECT_EQ(deliverer.seen.at(0).first.id, second);
  spool.other_node.erase(id);  // that node's lease ran out
  notify();
  EXPECT_EQ(deliverer.calls, 2);
  EXPECT_FALSE(spool.find(id));
}

TEST_F(SharedSchedulerTest, ClaimsNoMoreThanTheLanesHaveRoomFor) {
  config.delivery.max_connections = 2;
  deliverer.slow.insert("fabrikam.test");
  start();
  for (int i = 0; i < 5; ++i) queue({"bob@fabrikam.test"});
  EXPECT_EQ(spool.leased.size(), 2u);
  EXPECT_EQ(deliverer.waiting, 2);
  deliverer.open();
  settle();
  EXPECT_EQ(deliverer.delivered["bob@fabrikam.test"], 5);
  EXPECT_TRUE(spool.leased.empty());
  EXPECT_TRUE(spool.list().empty());
}

TEST_F(SharedSchedulerTest, AnActionAskedWhileAnotherNodeHeldTheMessageIsDoneByTheNextClaimer) {
  start();
  auto id = queue({"bob@fabrikam.test"}, 0, now + 10 * kMinute);  // not due for a while
  auto bounced = queue({"carol@fabrikam.test"}, 0, now + 10 * kMinute);
  spool.actions[id] = "delete";
  spool.actions[bounced] = "bounce";
  notify();
  EXPECT_EQ(deliverer.calls, 1);  // only the failure notice of the bounce
  EXPECT_FALSE(spool.find(id));
  EXPECT_FALSE(spool.find(bounced));
  EXPECT_EQ(deliverer.notices("carol@fabrikam.test"), 1);
  EXPECT_TRUE(spool.leased.empty());
}

}  // namespace
}  // namespace tern::queue
