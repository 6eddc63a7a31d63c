// RocksSpool::content in a temporary spool: a message committed whole comes
// back as prefix + content, a streamed one (store_part 1..n, then the commit
// with the tail) as prefix + parts + tail, in order; an unknown id is nullopt.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "queue/spool.h"
#include "queue/spool_rocksdb.h"
#include "util/random.h"

namespace tern::queue {
namespace {

namespace fs = std::filesystem;

class RocksContentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("tern-spool-" + util::random_uuid());
    fs::create_directories(root_);
    config::Spool cfg;
    cfg.path = root_;
    cfg.min_free = 0;
    spool_ = open_rocksdb_spool(cfg, OpenMode::kServe);
  }
  void TearDown() override {
    spool_->close();
    spool_.reset();
    fs::remove_all(root_);
  }

  NewMessage message(std::uint64_t id, std::string prefix, std::string content,
                     std::uint32_t parts) {
    NewMessage m;
    m.envelope.id = id;
    m.envelope.sender = "chris@contoso.com";
    m.prefix = std::move(prefix);
    m.content = std::move(content);
    m.parts = parts;
    return m;
  }

  fs::path root_;
  std::unique_ptr<Spool> spool_;
};

TEST_F(RocksContentTest, WholeMessageIsPrefixAndContent) {
  auto id = spool_->next_id();
  SpoolChange change;
  change.add.push_back(message(id, "Received: x\r\n", "Subject: a\r\n\r\nbody\r\n", 0));
  ASSERT_EQ(spool_->apply_and_wait(std::move(change)).status, SpoolStatus::kOk);
  auto content = spool_->content(id);
  ASSERT_TRUE(content);
  EXPECT_EQ(*content, "Received: x\r\nSubject: a\r\n\r\nbody\r\n");
  EXPECT_FALSE(spool_->content(id + 1000));
}

TEST_F(RocksContentTest, StreamedMessageIsPrefixPartsAndTail) {
  auto id = spool_->next_id();
  ASSERT_EQ(spool_->store_part(id, 1, "part one|").status, SpoolStatus::kOk);
  ASSERT_EQ(spool_->store_part(id, 2, "part two|").status, SpoolStatus::kOk);
  // A message committed whole next to it has no parts of its own.
  auto other = spool_->next_id();
  SpoolChange change;
  change.add.push_back(message(id, "Received: y\r\n", "tail\r\n", 2));
  change.add.push_back(message(other, "P|", "whole", 0));
  ASSERT_EQ(spool_->apply_and_wait(std::move(change)).status, SpoolStatus::kOk);
  EXPECT_EQ(spool_->content(id).value_or("-"), "Received: y\r\npart one|part two|tail\r\n");
  EXPECT_EQ(spool_->content(other).value_or("-"), "P|whole");
}

}  // namespace
}  // namespace tern::queue
