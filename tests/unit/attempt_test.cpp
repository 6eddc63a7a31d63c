// What a delivery attempt does to the queue (queue/attempt.h): recipient
// states, retries by the schedule, expiry, delay notices and DSNs.
#include <gtest/gtest.h>

#include "config/config.h"
#include "queue/attempt.h"
#include "queue/retry_schedule.h"
#include "queue/spool_memory.h"
#include "session_harness.h"

namespace tern::queue {
namespace {

using delivery::Outcome;
using delivery::RecipientOutcome;
using delivery::Scope;

constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kHour = 60 * kMinute;

class AttemptTest : public ::testing::Test {
 protected:
  config::Config config = config::parse(test::test_config_text(), "/tmp/t.toml");
  MemorySpool spool;
  AttemptRecorder recorder{config, spool};

  Envelope envelope(std::vector<std::pair<std::string, std::uint8_t>> rcpts,
                    std::string sender = "chris@example.test") {
    Envelope e;
    e.id = 42;
    e.message_id = "<m@x>";
    e.sender = sender;
    e.arrival_ms = 1'000'000'000'000;
    for (auto& [a, n] : rcpts) {
      Recipient r;
      r.address = a;
      r.notify = n;
      r.local = a.find("@example.test") != std::string::npos;
      e.recipients.push_back(r);
    }
    return e;
  }
  static Outcome ok() {
    return Outcome::delivered_by(smtp::Reply(250, "2.0.0", "OK"), "mx.fabrikam.test[127.0.0.2]:25");
  }
  static Outcome temp() {
    return Outcome::temporary_failure(Scope::kRecipient, smtp::Reply(451, "4.3.0", "Try later"),
                                      "mx[127.0.0.2]:25");
  }
  static Outcome perm() {
    auto o =
        Outcome::permanent_failure(Scope::kRecipient, smtp::Reply(550, "5.1.1", "User unknown"),
                                   "mx.fabrikam.test[127.0.0.2]:25");
    o.remote = true;
    return o;
  }
};

TEST(RetrySchedule, WaitsFollowTheListThenRepeatTheLast) {
  config::Queue q;
  RetrySchedule s(q);
  EXPECT_EQ(s.wait_after(1), 60'000u);
  EXPECT_EQ(s.wait_after(2), 300'000u);
  EXPECT_EQ(s.wait_after(5), 3'600'000u);
  EXPECT_EQ(s.wait_after(50), 3'600'000u);
  EXPECT_FALSE(s.expired(0, 2 * 86400'000 - 1));
  EXPECT_TRUE(s.expired(0, 2 * 86400'000));
  EXPECT_TRUE(s.delay_notice_due(0, 4 * kHour));
}

TEST_F(AttemptTest, AllDeliveredRemovesTheMessage) {
  auto e = envelope({{"kate@fabrikam.test", 0}});
  auto r = recorder.record(e, "Subject: x\r\n\r\nbody\r\n", {{0, ok()}}, e.arrival_ms + 1000);
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.change.remove, std::vector<std::uint64_t>{42});
  EXPECT_TRUE(r.change.add.empty());
  EXPECT_EQ(e.recipients[0].state, RecipientState::kRelayed);
  ASSERT_EQ(r.tracking.size(), 1u);
  EXPECT_EQ(r.tracking[0].event, "SEND");
}

TEST_F(AttemptTest, TemporaryFailureSchedulesTheNextAttempt) {
  auto e = envelope({{"kate@fabrikam.test", 0}});
  std::int64_t now = e.arrival_ms + 1000;
  auto r = recorder.record(e, "x\r\n", {{0, temp()}}, now);
  EXPECT_FALSE(r.finished);
  EXPECT_EQ(r.next_attempt_ms, now + kMinute);
  ASSERT_EQ(r.change.update.size(), 1u);
  EXPECT_EQ(r.change.update[0].recipients[0].state, RecipientState::kDeferred);
  EXPECT_EQ(r.change.update[0].recipients[0].last_reply, "451 4.3.0 Try later");
  auto r2 = recorder.record(e, "x\r\n", {{0, temp()}}, now + kMinute);
  EXPECT_EQ(r2.next_attempt_ms, now + kMinute + 5 * kMinute);
  EXPECT_EQ(r2.tracking[0].event, "DEFER");
}

TEST_F(AttemptTest, PermanentFailureSendsAFailureNotice) {
  auto e = envelope({{"kate@fabrikam.test", 0}, {"bob@fabrikam.test", 0}});
  auto r = recorder.record(e, "Subject: x\r\n\r\nbody\r\n", {{0, perm()}, {1, ok()}},
                           e.arrival_ms + 1000);
  EXPECT_TRUE(r.finished);
  ASSERT_EQ(r.change.add.size(), 1u);
  const auto& dsn = r.change.add[0];
  EXPECT_EQ(dsn.envelope.sender, "");
  EXPECT_TRUE(dsn.envelope.is_dsn);
  ASSERT_EQ(dsn.envelope.recipients.size(), 1u);
  EXPECT_EQ(dsn.envelope.recipients[0].address, "chris@example.test");
  EXPECT_TRUE(dsn.envelope.recipients[0].local);
  EXPECT_NE(dsn.content.find("Final-Recipient: rfc822; kate@fabrikam.test"), std::string::npos);
  EXPECT_EQ(dsn.content.find("bob@fabrikam.test"), std::string::npos);
  EXPECT_EQ(r.new_messages, std::vector<std::uint64_t>{dsn.envelope.id});
}

TEST_F(AttemptTest, NoNoticeForTheNullSenderOrNotifyNever) {
  auto e = envelope({{"kate@fabrikam.test", 0}}, "");
  EXPECT_TRUE(recorder.record(e, "x\r\n", {{0, perm()}}, e.arrival_ms).change.add.empty());
  auto e2 = envelope({{"kate@fabrikam.test", smtp::notify::kNever}});
  EXPECT_TRUE(recorder.record(e2, "x\r\n", {{0, perm()}}, e2.arrival_ms).change.add.empty());
}

TEST_F(AttemptTest, SuccessNoticeForLocalDeliveryWithNotifySuccess) {
  auto e = envelope({{"kate@example.test", smtp::notify::kSuccess | smtp::notify::kFailure}});
  auto r = recorder.record(e, "x\r\n", {{0, ok()}}, e.arrival_ms);
  ASSERT_EQ(r.change.add.size(), 1u);
  EXPECT_NE(r.change.add[0].content.find("Action: delivered"), std::string::npos);
  EXPECT_EQ(r.tracking[0].event, "DELIVER");
}

TEST_F(AttemptTest, RelayedNoticeOnlyWhenTheNextHopLacksDsn) {
  auto e = envelope({{"kate@fabrikam.test", smtp::notify::kSuccess}});
  EXPECT_TRUE(recorder.record(e, "x\r\n", {{0, ok()}}, e.arrival_ms).change.add.empty());
  auto e2 = envelope({{"kate@fabrikam.test", smtp::notify::kSuccess}});
  auto relayed = ok();
  relayed.dsn_relayed = true;
  auto r = recorder.record(e2, "x\r\n", {{0, relayed}}, e2.arrival_ms);
  ASSERT_EQ(r.change.add.size(), 1u);
  EXPECT_NE(r.change.add[0].content.find("Action: relayed"), std::string::npos);
}

TEST_F(AttemptTest, DelayNoticeOnceAfterTheConfiguredTime) {
  auto e = envelope({{"kate@fabrikam.test", 0}});
  EXPECT_TRUE(recorder.record(e, "x\r\n", {{0, temp()}}, e.arrival_ms + kHour).change.add.empty());
  auto r = recorder.record(e, "x\r\n", {{0, temp()}}, e.arrival_ms + 4 * kHour);
  ASSERT_EQ(r.change.add.size(), 1u);
  EXPECT_NE(r.change.add[0].content.find("Action: delayed"), std::string::npos);
  EXPECT_TRUE(e.recipients[0].delay_notified);
  EXPECT_TRUE(
      recorder.record(e, "x\r\n", {{0, temp()}}, e.arrival_ms + 5 * kHour).change.add.empty());
  // NOTIFY without DELAY: no delay notice
  auto e2 = envelope({{"kate@fabrikam.test", smtp::notify::kFailure}});
  EXPECT_TRUE(
      recorder.record(e2, "x\r\n", {{0, temp()}}, e2.arrival_ms + 4 * kHour).change.add.empty());
}

TEST_F(AttemptTest, ExpiryFailsWhatIsLeft) {
  auto e = envelope({{"kate@fabrikam.test", 0}});
  recorder.record(e, "x\r\n", {{0, temp()}}, e.arrival_ms + kMinute);
  EXPECT_TRUE(recorder.expired(e, e.arrival_ms + 2 * 24 * kHour));
  auto r = recorder.fail_pending(e, "x\r\n", smtp::Reply(550, "5.4.7", "Delivery time expired"),
                                 e.arrival_ms + 2 * 24 * kHour);
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(e.recipients[0].state, RecipientState::kFailed);
  EXPECT_EQ(e.recipients[0].last_reply,
            "550 5.4.7 Delivery time expired (last attempt: 451 4.3.0 Try later)");
  ASSERT_EQ(r.change.add.size(), 1u);
  EXPECT_NE(r.change.add[0].content.find("Status: 5.4.7"), std::string::npos);
}

}  // namespace
}  // namespace tern::queue
