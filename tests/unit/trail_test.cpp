// The message trail (queue/trail.h): which query an argument of `tern trail`
// names, the RocksDB keys and their order, the JSON of SPEC §1, one event per
// recipient of a RECEIVE, and the RocksDB spool's trail: written, found by id,
// Message-ID and address after a reopen, and expired only once its message
// has left the queue and its newest event is older than the retention.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>

#include "queue/spool.h"
#include "queue/spool_rocksdb.h"
#include "queue/spool_rocksdb_trail.h"
#include "queue/trail.h"
#include "queue/trail_writer.h"

namespace tern::queue {
namespace {

using Kind = TrailQuery::Kind;

TEST(TrailQuery, DigitsAreAnIdBracketsAMessageIdAnAtAnAddress) {
  struct Case {
    const char* argument;
    Kind kind;
  } cases[] = {
      {"1733250000123", Kind::kId},       {"<20261203.abc@mail.example.test>", Kind::kMessageId},
      {"20261203.abc", Kind::kMessageId}, {"Kate@Example.TEST", Kind::kAddress},
      {"12ab", Kind::kMessageId},         {"a b@c", Kind::kMessageId},
  };
  for (const auto& c : cases) EXPECT_EQ(trail_query(c.argument).kind, c.kind) << c.argument;
  EXPECT_EQ(trail_query(" 42 ").value, "42");
}

TEST(TrailKeys, NormalisedForms) {
  EXPECT_EQ(trail_message_id_key("<ABC.1@Host.Test>"), "abc.1@host.test");
  EXPECT_EQ(trail_message_id_key("ABC.1@Host.Test"), "abc.1@host.test");
  EXPECT_EQ(trail_address_key(" Kate@Example.TEST"), "kate@example.test");
}

TEST(TrailKeys, EventsOfAMessageSortByTimeThenArrival) {
  using namespace rocksdb_spool;
  EXPECT_LT(trail_event_key(7, 1000, 5), trail_event_key(7, 1001, 0));
  EXPECT_LT(trail_event_key(7, 1000, 1), trail_event_key(7, 1000, 2));
  EXPECT_LT(trail_event_key(7, 99999999, 0), trail_event_key(8, 1, 0));
  EXPECT_EQ(trail_event_key(7, 1, 0).rfind(trail_events_prefix(7), 0), 0u);
  EXPECT_LT(trail_time_key(255, 9), trail_time_key(256, 1));  // big-endian, not text order
  // An index prefix never matches a longer value: "kate@a" is not "kate@a.b".
  EXPECT_NE(trail_index_key('a', "kate@a.b", 1).rfind(trail_index_prefix('a', "kate@a"), 0), 0u);
  EXPECT_EQ(trail_index_key('a', "kate@a", 1).rfind(trail_index_prefix('a', "kate@a"), 0), 0u);
}

TEST(TrailKeys, EventValueRoundTrips) {
  using namespace rocksdb_spool;
  TrailEvent e{1733250000123,
               "DEFER",
               42,
               "<m@x>",
               "chris@x",
               "kate@y",
               "[127.0.0.1]:1",
               std::string("451 4.4.1 try later\0x", 22)};
  auto back = decode_trail_event(trail_event_key(e.id, e.time_ms, 3), encode_trail_event(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->time_ms, e.time_ms);
  EXPECT_EQ(back->id, 42u);
  EXPECT_EQ(back->event, "DEFER");
  EXPECT_EQ(back->message_id, e.message_id);
  EXPECT_EQ(back->sender, e.sender);
  EXPECT_EQ(back->recipient, e.recipient);
  EXPECT_EQ(back->remote_host, e.remote_host);
  EXPECT_EQ(back->reply, e.reply);
  EXPECT_FALSE(decode_trail_event(trail_event_key(1, 1, 1), "\x00\x00\x00\x09short"));
}

TEST(TrailJson, ShapeOfSpec) {
  TrailEvent e{1234, "DELIVER", 42, "<m@x>", "chris@x", "kate@y", "maildir", "250 2.0.0 ok"};
  auto j = nlohmann::json::parse(trail_json({e}));
  ASSERT_EQ(j.size(), 1u);
  ASSERT_EQ(j["events"].size(), 1u);
  const auto& o = j["events"][0];
  EXPECT_EQ(o["time"], "1970-01-01T00:00:01.234Z");
  EXPECT_EQ(o["event"], "DELIVER");
  EXPECT_EQ(o["recipient"], "kate@y");
  EXPECT_EQ(o["remote_host"], "maildir");
  EXPECT_EQ(o["reply"], "250 2.0.0 ok");
  EXPECT_EQ(nlohmann::json::parse(trail_json({}))["events"].size(), 0u);
  // Bytes that are not UTF-8 do not make the document invalid.
  e.reply = "\xff\xfe";
  EXPECT_NO_THROW(nlohmann::json::parse(trail_json({e})));
}

TEST(TrailEvents, OnePerRecipientOfAReceive) {
  log::TrackingEvent t{"RECEIVE", 9, "<m@x>", "chris@x", "a@y;b@y", "127.0.0.1", 10, "smtp"};
  auto events = trail_events(t, 5000);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].recipient, "a@y");
  EXPECT_EQ(events[1].recipient, "b@y");
  EXPECT_EQ(events[1].time_ms, 5000);
  EXPECT_EQ(events[1].reply, "smtp");
  t.recipient = "";
  EXPECT_EQ(trail_events(t, 1).size(), 1u);  // an administrator's FAIL of the whole message
}

TEST(TrailMatches, AnAddressKeepsItsOwnEvents) {
  TrailEvent e{1, "DELIVER", 7, "<M@x>", "Chris@x", "kate@y", "", ""};
  EXPECT_TRUE(trail_matches(e, {Kind::kAddress, "KATE@y"}));
  EXPECT_TRUE(trail_matches(e, {Kind::kAddress, "chris@X"}));  // the sender sees every event
  e.sender = "other@x";
  EXPECT_FALSE(trail_matches(e, {Kind::kAddress, "chris@x"}));
  EXPECT_TRUE(trail_matches(e, {Kind::kAddress, "m@x"}));  // a Message-ID without <>
  EXPECT_TRUE(trail_matches(e, {Kind::kMessageId, "<m@X>"}));
  EXPECT_TRUE(trail_matches(e, {Kind::kId, "7"}));
  EXPECT_FALSE(trail_matches(e, {Kind::kId, "8"}));
}

TEST(TrailWriter, SweepsEveryQuarterBetweenASecondAndAnHour) {
  using std::chrono::milliseconds;
  EXPECT_EQ(TrailWriter::sweep_interval(2000), milliseconds(1000));
  EXPECT_EQ(TrailWriter::sweep_interval(8000), milliseconds(2000));
  EXPECT_EQ(TrailWriter::sweep_interval(30ull * 86400 * 1000), milliseconds(3600 * 1000));
}

TEST(TrailWriter, WritesEverythingRecordedBeforeStopAndSurvivesAFailingStore) {
  std::vector<TrailEvent> written;
  std::promise<void> failed;
  int sweeps = 0;
  TrailWriter writer(
      86400'000,
      [&](const std::vector<TrailEvent>& batch) {
        if (batch.front().event == "BAD") {
          failed.set_value();
          throw std::runtime_error("disk on fire");
        }
        written.insert(written.end(), batch.begin(), batch.end());
      },
      [&](std::int64_t) { ++sweeps; });
  writer.record({1, "BAD", 1, "", "", "", "", ""});  // logged and dropped; nothing else breaks
  failed.get_future().wait();
  for (int i = 0; i < 3000; ++i) writer.record({i, "DEFER", 2, "", "", "", "", ""});
  writer.stop();
  writer.record({9, "LATE", 3, "", "", "", "", ""});  // after stop: ignored
  ASSERT_EQ(written.size(), 3000u);
  for (std::size_t i = 0; i < written.size(); ++i)
    EXPECT_EQ(written[i].time_ms, static_cast<std::int64_t>(i));
  EXPECT_EQ(sweeps, 1);  // at start; the next in an hour
}

class RocksTrailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> serial{0};
    config.path =
        std::filesystem::temp_directory_path() /
        ("tern-trail-test-" + std::to_string(::getpid()) + "-" + std::to_string(++serial));
    config.min_free = 0;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(config.path, ec);
  }
  std::unique_ptr<Spool> open(OpenMode mode, std::uint64_t trail_ms) {
    RocksSpoolTuning tuning;
    tuning.trail_ms = trail_ms;
    return open_rocksdb_spool(config, mode, tuning);
  }
  static TrailEvent event(std::uint64_t id, std::int64_t time_ms, const char* what,
                          const char* recipient) {
    return {time_ms,
            what,
            id,
            "<msg-" + std::to_string(id) + "@Host.Test>",
            "Chris@Example.test",
            recipient,
            "127.0.0.1",
            "250 ok"};
  }
  static std::vector<std::string> names(const std::vector<TrailEvent>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.event + " " + e.recipient);
    return out;
  }
  config::Spool config;
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_F(RocksTrailTest, FoundByIdMessageIdAndAddressOldestFirst) {
  std::int64_t t = now_ms();
  {
    auto spool = open(OpenMode::kServe, 86400'000);
    ASSERT_NE(spool->trail(), nullptr);
    spool->trail()->record(event(5, t + 2, "DELIVER", "kate@y.test"));
    spool->trail()->record(event(5, t, "RECEIVE", "kate@y.test"));
    spool->trail()->record(event(5, t, "RECEIVE", "ann@z.test"));
    spool->trail()->record(event(5, t + 1, "DEFER", "ann@z.test"));
    spool->trail()->record(event(6, t + 3, "RECEIVE", "ann@z.test"));
    spool->close();  // writes what is queued
  }
  auto spool = open(OpenMode::kReadOnly, 86400'000);
  auto* trail = spool->trail();
  ASSERT_NE(trail, nullptr);
  using V = std::vector<std::string>;
  EXPECT_EQ(names(trail->find({Kind::kId, "5"})), (V{"RECEIVE kate@y.test", "RECEIVE ann@z.test",
                                                     "DEFER ann@z.test", "DELIVER kate@y.test"}));
  EXPECT_EQ(names(trail->find({Kind::kMessageId, "<MSG-6@host.test>"})), (V{"RECEIVE ann@z.test"}));
  EXPECT_EQ(names(trail->find({Kind::kAddress, "ANN@z.test"})),
            (V{"RECEIVE ann@z.test", "DEFER ann@z.test", "RECEIVE ann@z.test"}));
  EXPECT_EQ(trail->find({Kind::kAddress, "chris@example.TEST"}).size(), 5u);
  EXPECT_EQ(names(trail->find({Kind::kAddress, "msg-6@host.test"})), (V{"RECEIVE ann@z.test"}));
  EXPECT_TRUE(trail->find({Kind::kAddress, "nobody@y.test"}).empty());
  EXPECT_TRUE(trail->find({Kind::kId, "7"}).empty());
}

TEST_F(RocksTrailTest, ExpiresOnlyMessagesGoneFromTheQueueAndOld) {
  std::int64_t old = now_ms() - 10 * 86400'000LL, recent = now_ms();
  std::uint64_t queued = 0;
  {
    auto spool = open(OpenMode::kServe, 30ull * 86400'000);
    NewMessage m;
    m.envelope.id = queued = spool->next_id();
    m.envelope.sender = "chris@example.test";
    m.content = "x";
    ASSERT_EQ(spool
                  ->apply_and_wait([&] {
                    SpoolChange c;
                    c.add.push_back(m);
                    return c;
                  }())
                  .status,
              SpoolStatus::kOk);
    spool->trail()->record(event(1, old, "RECEIVE", "gone@y.test"));  // left the queue, old
    spool->trail()->record(event(1, old + 5, "DELIVER", "gone@y.test"));
    spool->trail()->record(event(2, old, "RECEIVE", "later@y.test"));  // newest event recent
    spool->trail()->record(event(2, recent, "DELIVER", "later@y.test"));
    spool->trail()->record(event(queued, old, "RECEIVE", "q@y.test"));  // still queued
    spool->close();
  }
  // A retention of one day: the start's sweep drops message 1 only.
  open(OpenMode::kServe, 86400'000)->close();
  auto spool = open(OpenMode::kReadOnly, 86400'000);
  auto* trail = spool->trail();
  EXPECT_TRUE(trail->find({Kind::kId, "1"}).empty());
  EXPECT_TRUE(trail->find({Kind::kAddress, "gone@y.test"}).empty());
  EXPECT_TRUE(trail->find({Kind::kMessageId, "<msg-1@host.test>"}).empty());
  EXPECT_EQ(trail->find({Kind::kId, "2"}).size(), 2u);
  EXPECT_EQ(trail->find({Kind::kId, std::to_string(queued)}).size(), 1u);
  EXPECT_EQ(trail->find({Kind::kAddress, "chris@example.test"}).size(), 3u);
}

TEST_F(RocksTrailTest, NoTrailWhenOff) {
  auto spool = open(OpenMode::kServe, 0);
  EXPECT_EQ(spool->trail(), nullptr);
}

}  // namespace
}  // namespace tern::queue
