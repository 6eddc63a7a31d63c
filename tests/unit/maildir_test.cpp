// delivery::deliver_to_maildir in a temporary folder: where the file lands, its
// name (maildir(5)) and content, unique names under concurrency, folders made
// when missing, and a temporary failure with a clear text when the path cannot
// be a folder (a regular file in the way: tests run as root, where permission
// bits would not stop a write).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "delivery/maildir.h"
#include "util/random.h"

namespace tern::delivery {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMessage =
    "From: Chris <chris@contoso.com>\r\n"
    "Subject: Test\r\n"
    "\r\n"
    "Line one\r\n"
    "a lone \r in here\r\n";

class MaildirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("tern-maildir-" + util::random_uuid());
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  MaildirMessage message() const {
    return {kMessage, "chris@contoso.com", "kate@example.test", "mail.example.test"};
  }

  static std::vector<fs::path> files(const fs::path& dir) {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(dir)) out.push_back(entry.path());
    return out;
  }

  static std::string read(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  fs::path root_;
};

TEST_F(MaildirTest, DeliversIntoNew) {
  fs::path maildir = root_ / "kate";
  Outcome o = deliver_to_maildir(maildir, message());
  ASSERT_TRUE(o.delivered()) << o.reply.summary();
  EXPECT_EQ(o.reply.code, 250);
  EXPECT_EQ(o.reply.enhanced, "2.0.0");
  EXPECT_EQ(o.remote_host, "maildir");
  EXPECT_FALSE(o.remote);

  auto stored = files(maildir / "new");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_TRUE(files(maildir / "tmp").empty());
  EXPECT_TRUE(files(maildir / "cur").empty());
  EXPECT_NE(o.reply.lines.at(0).find(stored[0].string()), std::string::npos) << o.reply.lines[0];

  std::string content = read(stored[0]);
  EXPECT_EQ(content,
            "Return-Path: <chris@contoso.com>\n"
            "Delivered-To: kate@example.test\n"
            "From: Chris <chris@contoso.com>\n"
            "Subject: Test\n"
            "\n"
            "Line one\n"
            "a lone \r in here\n");

  // <seconds>.M<usec>P<pid>Q<counter>.<host>,S=<size>
  std::string name = stored[0].filename().string();
  unsigned long long seconds = 0, usec = 0, pid = 0, counter = 0;
  char rest[256] = {};
  ASSERT_EQ(std::sscanf(name.c_str(), "%llu.M%lluP%lluQ%llu.%255s", &seconds, &usec, &pid, &counter,
                        rest),
            5)
      << name;
  EXPECT_TRUE(name[0] >= '1' && name[0] <= '9') << name;
  EXPECT_EQ(pid, static_cast<unsigned long long>(::getpid()));
  EXPECT_LT(usec, 1000000u);
  EXPECT_EQ(std::string(rest), "mail.example.test,S=" + std::to_string(content.size()));
}

TEST_F(MaildirTest, NullSenderAndHostnameEscapes) {
  MaildirMessage msg = message();
  msg.return_path.clear();
  msg.hostname = "odd/host:name";
  fs::path maildir = root_ / "m";
  ASSERT_TRUE(deliver_to_maildir(maildir, msg).delivered());
  auto stored = files(maildir / "new");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_NE(stored[0].filename().string().find(".odd\\057host\\072name,S="), std::string::npos)
      << stored[0];
  EXPECT_TRUE(read(stored[0]).starts_with("Return-Path: <>\nDelivered-To: kate@example.test\n"));
}

TEST_F(MaildirTest, ManyDeliveriesGetUniqueNames) {
  fs::path maildir = root_ / "busy";
  constexpr int kThreads = 4, kEach = 25;
  std::vector<std::thread> threads;
  std::atomic<int> delivered{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i)
        if (deliver_to_maildir(maildir, message()).delivered()) ++delivered;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(delivered, kThreads * kEach);
  std::set<std::string> names;
  for (const auto& f : files(maildir / "new")) names.insert(f.filename().string());
  EXPECT_EQ(names.size(), std::size_t(kThreads * kEach));
}

TEST_F(MaildirTest, CreatesMissingFoldersPrivately) {
  fs::path maildir = root_ / "a" / "b" / "kate";
  ASSERT_TRUE(deliver_to_maildir(maildir, message()).delivered());
  for (const char* sub : {"", "cur", "new", "tmp"}) {
    struct stat st {};
    ASSERT_EQ(::stat((maildir / sub).c_str(), &st), 0) << sub;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u) << sub;
  }
  // A maildir with only new/ gets the others back.
  fs::path partial = root_ / "partial";
  fs::create_directories(partial / "new");
  ASSERT_TRUE(deliver_to_maildir(partial, message()).delivered());
  EXPECT_TRUE(fs::is_directory(partial / "cur"));
  EXPECT_TRUE(fs::is_directory(partial / "tmp"));
  EXPECT_EQ(files(partial / "new").size(), 1u);
}

TEST_F(MaildirTest, PathThroughAFileIsATemporaryFailure) {
  fs::path blocker = root_ / "plain-file";
  std::ofstream(blocker) << "not a folder";
  Outcome o = deliver_to_maildir(blocker / "kate", message());
  EXPECT_TRUE(o.temporary());
  EXPECT_EQ(o.scope, Scope::kRecipient);
  EXPECT_EQ(o.reply.code, 451);
  EXPECT_EQ(o.reply.enhanced, "4.3.0");
  EXPECT_EQ(o.remote_host, "maildir");
  const std::string& text = o.reply.lines.at(0);
  EXPECT_NE(text.find("Not a directory"), std::string::npos) << text;
  EXPECT_NE(text.find(blocker.string()), std::string::npos) << text;  // what is in the way
}

TEST_F(MaildirTest, MaildirThatIsAFileIsATemporaryFailure) {
  fs::path file = root_ / "kate";
  std::ofstream(file) << "oops";
  Outcome o = deliver_to_maildir(file, message());
  EXPECT_TRUE(o.temporary());
  EXPECT_EQ(o.reply.code, 451);
  EXPECT_NE(o.reply.lines.at(0).find("Not a directory"), std::string::npos) << o.reply.lines[0];
}

}  // namespace
}  // namespace tern::delivery
