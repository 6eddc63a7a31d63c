// The PostgreSQL spool's id blocks: every id of every reserved block handed out
// once, the refill asked for once at half a block, a spare block used only
// after the current one, and an empty reserve reported (never an id reused).
#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "pg/pg.h"
#include "queue/spool_postgres_ids.h"

namespace tern::queue::postgres_spool {
namespace {

TEST(IdBlocks, EmptyUntilABlockIsAdded) {
  IdBlocks ids(10);
  EXPECT_FALSE(ids.take());
  EXPECT_TRUE(ids.refill());
  ids.add(100);
  EXPECT_EQ(ids.take(), 100u);
}

TEST(IdBlocks, RefillAskedOnceAtHalfABlockAndTheSpareFollows) {
  IdBlocks ids(10);
  ids.add(1000);
  std::vector<std::uint64_t> got;
  for (int i = 0; i < 4; ++i) {
    got.push_back(*ids.take());
    EXPECT_FALSE(ids.refill()) << i;  // more than half left
  }
  got.push_back(*ids.take());  // 5 used: half left
  EXPECT_TRUE(ids.refill());
  EXPECT_FALSE(ids.refill());  // asked already
  ids.add(5000);
  EXPECT_FALSE(ids.refill());  // a spare is there
  for (int i = 0; i < 7; ++i) got.push_back(*ids.take());
  std::vector<std::uint64_t> want{1000, 1001, 1002, 1003, 1004, 1005,
                                  1006, 1007, 1008, 1009, 5000, 5001};
  EXPECT_EQ(got, want);
}

TEST(IdBlocks, AFailedRefillIsAskedAgain) {
  IdBlocks ids(4);
  ids.add(0 + 40);
  ids.take();
  ids.take();
  EXPECT_TRUE(ids.refill());
  ids.failed();
  EXPECT_TRUE(ids.refill());
  ids.take();
  ids.take();
  EXPECT_FALSE(ids.take());  // used up, the refill not there: never a reused id
}

TEST(IdBlocks, ConcurrentTakersGetDistinctIds) {
  IdBlocks ids(1000);
  ids.add(1);
  std::vector<std::vector<std::uint64_t>> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got)
    threads.emplace_back([&ids, &g] {
      for (int i = 0; i < 250; ++i) g.push_back(*ids.take());
    });
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> all;
  for (const auto& g : got) all.insert(g.begin(), g.end());
  EXPECT_EQ(all.size(), 1000u);
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), 1000u);
  EXPECT_FALSE(ids.take());
}

TEST(PgParams, TextArraysQuoteAndMendTheirElements) {
  auto p = pg::text_array({"a\"b", "c\\d", std::string("e\0f", 3), "\xff"});
  EXPECT_EQ(*p.value, "{\"a\\\"b\",\"c\\\\d\",\"e?f\",\"?\"}");
  EXPECT_EQ(*pg::int_array({1, -2}).value, "{1,-2}");
}

// PostgreSQL's binary array format: dimensions, null flag, element type,
// then each element's length (-1: NULL) and bytes, big-endian.
TEST(PgParams, BinaryArraysAreWhatArrayRecvReads) {
  auto be = [](std::initializer_list<int> bytes) {
    std::string s;
    for (int b : bytes) s += static_cast<char>(b);
    return s;
  };
  auto ints = pg::bigint_array({1, -2});
  EXPECT_TRUE(ints.binary);
  EXPECT_EQ(*ints.value,
            be({0, 0, 0, 1, 0,   0,   0,   0,   0,   0,   0,   20, 0, 0, 0, 2, 0, 0, 0, 1,  //
                0, 0, 0, 8, 0,   0,   0,   0,   0,   0,   0,   1,                           //
                0, 0, 0, 8, 255, 255, 255, 255, 255, 255, 255, 254}));
  EXPECT_EQ(*pg::integer_array({}).value, be({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23}));
  EXPECT_EQ(*pg::boolean_array({true, false}).value,
            be({0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0, 1,  //
                0, 0, 0, 1, 1, 0, 0, 0, 1, 0}));
  EXPECT_EQ(*pg::bytea_array({std::string_view("\0\xff", 2)}).value,
            be({0, 0, 0, 1, 0, 0,  0, 0, 0, 0, 0, 17, 0, 0, 0, 1, 0, 0, 0, 1,  //
                0, 0, 0, 2, 0, 255}));
  EXPECT_EQ(*pg::text_array_binary({std::nullopt, std::string("a\xff")}).value,
            be({0,   0,   0,   1,   0, 0, 0, 1, 0,   0,  0, 25, 0, 0, 0, 2, 0, 0, 0, 1,  //
                255, 255, 255, 255, 0, 0, 0, 2, 'a', '?'}));
}

TEST(PgDescribe, NamesHostsAndPortsNeverThePassword) {
  auto d = pg::describe("host=db1,db2 port=5432,5433 dbname=tern user=tern password=secret");
  EXPECT_EQ(d, "host=db1,db2 port=5432,5433 dbname=tern");
  EXPECT_EQ(pg::describe("postgresql://tern:secret@db3:6543/q").find("secret"), std::string::npos);
}

}  // namespace
}  // namespace tern::queue::postgres_spool
