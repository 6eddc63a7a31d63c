// The RocksDB spool's recovery from write errors, with a RocksDB Env whose
// writes fail on demand (EIO): a spool that cannot reopen says so instead of
// answering "no such message", the messages whose commit failed are removed
// after the reopen, and a streamed message whose parts predate a reopen is
// refused rather than stored truncated.
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "config/config.h"
#include "queue/spool.h"
#include "queue/spool_rocksdb.h"

namespace tern::queue {
namespace {

// Every write to a file (and every new file) fails while `failing` is set.
class FailingEnv final : public rocksdb::EnvWrapper {
 public:
  FailingEnv() : rocksdb::EnvWrapper(rocksdb::Env::Default()) {}
  const char* Name() const override { return "FailingEnv"; }

  rocksdb::Status NewWritableFile(const std::string& name,
                                  std::unique_ptr<rocksdb::WritableFile>* result,
                                  const rocksdb::EnvOptions& options) override {
    if (failing) return error();
    std::unique_ptr<rocksdb::WritableFile> file;
    auto s = target()->NewWritableFile(name, &file, options);
    if (s.ok()) *result = std::make_unique<File>(std::move(file), failing);
    return s;
  }

  std::atomic<bool> failing{false};

 private:
  static rocksdb::Status error() { return rocksdb::Status::IOError("injected EIO"); }

  class File final : public rocksdb::WritableFileWrapper {
   public:
    File(std::unique_ptr<rocksdb::WritableFile> file, const std::atomic<bool>& failing)
        : rocksdb::WritableFileWrapper(file.get()), file_(std::move(file)), failing_(failing) {}
    rocksdb::Status Append(const rocksdb::Slice& data) override {
      return failing_ ? error() : rocksdb::WritableFileWrapper::Append(data);
    }
    rocksdb::Status Append(const rocksdb::Slice& data,
                           const rocksdb::DataVerificationInfo& info) override {
      return failing_ ? error() : rocksdb::WritableFileWrapper::Append(data, info);
    }
    rocksdb::Status Flush() override {
      return failing_ ? error() : rocksdb::WritableFileWrapper::Flush();
    }
    rocksdb::Status Sync() override {
      return failing_ ? error() : rocksdb::WritableFileWrapper::Sync();
    }
    rocksdb::Status Fsync() override {
      return failing_ ? error() : rocksdb::WritableFileWrapper::Fsync();
    }

   private:
    std::unique_ptr<rocksdb::WritableFile> file_;
    const std::atomic<bool>& failing_;
  };
};

class RocksSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> serial{0};
    config.path =
        std::filesystem::temp_directory_path() /
        ("tern-spool-test-" + std::to_string(::getpid()) + "-" + std::to_string(++serial));
    config.min_free = 0;
    RocksSpoolTuning tuning;
    tuning.env = &env;
    tuning.resume_interval = std::chrono::milliseconds(0);  // every write tries again
    spool = open_rocksdb_spool(config, OpenMode::kServe, tuning);
  }
  void TearDown() override {
    env.failing = false;
    spool.reset();
    std::error_code ec;
    std::filesystem::remove_all(config.path, ec);
  }

  NewMessage message(std::string content, std::uint32_t parts = 0) {
    NewMessage m;
    m.envelope.id = spool->next_id();
    m.envelope.sender = "chris@example.test";
    Recipient r;
    r.address = "kate@example.test";
    m.envelope.recipients.push_back(r);
    m.content = std::move(content);
    m.envelope.size = m.content.size();
    m.parts = parts;
    return m;
  }
  CommitResult commit(NewMessage m) {
    SpoolChange change;
    change.add.push_back(std::move(m));
    return spool->apply_and_wait(std::move(change));
  }
  // The spool is closed after a write error and cannot be opened again yet.
  void fail_until_closed() {
    env.failing = true;
    EXPECT_NE(commit(message("lost\r\n")).status, SpoolStatus::kOk);
    // The next write resumes: RocksDB cannot, the reopen fails too.
    EXPECT_NE(spool->apply_and_wait({}).status, SpoolStatus::kOk);
  }

  FailingEnv env;
  config::Spool config;
  std::unique_ptr<Spool> spool;
};

TEST_F(RocksSpoolTest, ReadsOfAClosedSpoolThrowInsteadOfAnsweringNotFound) {
  auto kept = message("Subject: kept\r\n\r\nHello\r\n");
  auto id = kept.envelope.id;
  ASSERT_EQ(commit(std::move(kept)).status, SpoolStatus::kOk);
  fail_until_closed();
  EXPECT_THROW(spool->find(id), SpoolUnavailable);
  EXPECT_THROW(spool->content(id), SpoolUnavailable);
  EXPECT_THROW(spool->list(), SpoolUnavailable);

  env.failing = false;  // space or the device is back: the next write reopens
  EXPECT_EQ(spool->apply_and_wait({}).status, SpoolStatus::kOk);
  ASSERT_TRUE(spool->find(id));
  EXPECT_EQ(spool->content(id).value(), "Subject: kept\r\n\r\nHello\r\n");
  EXPECT_EQ(spool->list().size(), 1u);  // the message whose commit failed is not there
}

TEST_F(RocksSpoolTest, AStreamedMessageWhosePartsPredateAReopenIsRefused) {
  auto streamed = message("tail\r\n", 1);
  auto id = streamed.envelope.id;
  ASSERT_EQ(spool->store_part(id, 1, "Subject: big\r\n\r\nfirst part\r\n").status,
            SpoolStatus::kOk);
  fail_until_closed();
  env.failing = false;
  auto result = commit(std::move(streamed));
  EXPECT_EQ(result.status, SpoolStatus::kError) << result.error;
  EXPECT_FALSE(spool->find(id));

  // A message streamed after the reopen is stored whole.
  auto later = message("tail\r\n", 2);
  auto later_id = later.envelope.id;
  ASSERT_EQ(spool->store_part(later_id, 1, "one ").status, SpoolStatus::kOk);
  ASSERT_EQ(spool->store_part(later_id, 2, "two ").status, SpoolStatus::kOk);
  ASSERT_EQ(commit(std::move(later)).status, SpoolStatus::kOk);
  EXPECT_EQ(spool->content(later_id).value(), "one two tail\r\n");
}

// A notice whose first write failed and that is written again under the same
// id stays through a later reopen (only the failed writes are removed).
TEST_F(RocksSpoolTest, AMessageWrittenAgainAfterAFailedCommitSurvivesTheNextReopen) {
  auto notice = message("Subject: notice\r\n\r\nDelivered\r\n");
  notice.envelope.is_dsn = true;
  notice.envelope.sender = "";
  auto id = notice.envelope.id;
  env.failing = true;
  EXPECT_NE(commit(notice).status, SpoolStatus::kOk);
  env.failing = false;
  ASSERT_EQ(commit(notice).status, SpoolStatus::kOk);
  ASSERT_TRUE(spool->find(id));
  fail_until_closed();
  env.failing = false;
  EXPECT_EQ(spool->apply_and_wait({}).status, SpoolStatus::kOk);
  EXPECT_TRUE(spool->find(id));
}

}  // namespace
}  // namespace tern::queue

namespace tern::queue {
namespace {

// The maildrop pickup's records (SpoolChange::picked_up): written in the same
// batch as the message, kept across a reopen, dropped by forget_picked_up; a
// commit that fails records nothing.
TEST_F(RocksSpoolTest, PickupRecordsGoWithTheirMessageAndSurviveAReopen) {
  const std::string name = "1700000000.0123456789abcdef0123456789abcdef";
  SpoolChange change;
  change.add.push_back(message("Subject: dropped\r\n\r\nx\r\n"));
  change.picked_up.push_back(name);
  ASSERT_EQ(spool->apply_and_wait(std::move(change)).status, SpoolStatus::kOk);
  EXPECT_TRUE(spool->was_picked_up(name));

  spool->close();
  spool.reset();
  RocksSpoolTuning tuning;
  tuning.env = &env;
  tuning.resume_interval = std::chrono::milliseconds(0);
  spool = open_rocksdb_spool(config, OpenMode::kServe, tuning);
  EXPECT_TRUE(spool->was_picked_up(name));
  EXPECT_EQ(spool->picked_up_names(), std::vector<std::string>{name});
  EXPECT_EQ(spool->list().size(), 1u);  // the records are not messages

  env.failing = true;
  SpoolChange failing;
  failing.add.push_back(message("Subject: lost\r\n\r\nx\r\n"));
  failing.picked_up.push_back("1700000001.0123456789abcdef0123456789abcdef");
  EXPECT_NE(spool->apply_and_wait(std::move(failing)).status, SpoolStatus::kOk);
  env.failing = false;
  EXPECT_EQ(spool->apply_and_wait({}).status, SpoolStatus::kOk);
  EXPECT_FALSE(spool->was_picked_up("1700000001.0123456789abcdef0123456789abcdef"));

  SpoolChange forget;
  forget.forget_picked_up.push_back(name);
  ASSERT_EQ(spool->apply_and_wait(std::move(forget)).status, SpoolStatus::kOk);
  EXPECT_FALSE(spool->was_picked_up(name));
  EXPECT_TRUE(spool->picked_up_names().empty());
}

}  // namespace
}  // namespace tern::queue
