// delivery::deliver_to_maildir in a temporary folder: where the file lands, its
// name (maildir(5)) and content, unique names under concurrency, folders made
// when missing, a temporary failure with a clear text when the path cannot
// be a folder (a regular file in the way: tests run as root, where permission
// bits would not stop a write), idempotent repeats (new/, cur/, a stale tmp/
// file) and symbolic links refused.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
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

MaildirMessage identified(std::size_t index = 0) {
  MaildirMessage m{kMessage, "chris@contoso.com", "kate@example.test", "mail.example.test"};
  m.id = 1764760000123;
  m.arrival_ms = 1764760000456;
  m.recipient_index = index;
  return m;
}

TEST_F(MaildirTest, NameComesFromTheMessage) {
  fs::path maildir = root_ / "kate";
  Outcome o = deliver_to_maildir(maildir, identified(2));
  ASSERT_TRUE(o.delivered()) << o.reply.summary();
  auto stored = files(maildir / "new");
  ASSERT_EQ(stored.size(), 1u);
  std::string content = read(stored[0]);
  EXPECT_EQ(
      stored[0].filename().string(),
      "1764760000.M456000I1764760000123R2.mail.example.test,S=" + std::to_string(content.size()));
  EXPECT_EQ(stored[0].filename().string(), maildir_file_name(identified(2), content.size()));
}

TEST_F(MaildirTest, SameMessageTwiceIsStoredOnce) {
  fs::path maildir = root_ / "kate";
  Outcome first = deliver_to_maildir(maildir, identified());
  Outcome again = deliver_to_maildir(maildir, identified());
  ASSERT_TRUE(first.delivered()) << first.reply.summary();
  ASSERT_TRUE(again.delivered()) << again.reply.summary();
  EXPECT_EQ(again.reply.summary(), first.reply.summary());
  EXPECT_EQ(files(maildir / "new").size(), 1u);
  EXPECT_TRUE(files(maildir / "tmp").empty());
  // Another recipient of the same message (or another message) is another file.
  ASSERT_TRUE(deliver_to_maildir(maildir, identified(1)).delivered());
  MaildirMessage other = identified();
  other.id += 1;
  ASSERT_TRUE(deliver_to_maildir(maildir, other).delivered());
  EXPECT_EQ(files(maildir / "new").size(), 3u);
}

TEST_F(MaildirTest, CopyMovedToCurIsNotWrittenAgain) {
  fs::path maildir = root_ / "kate";
  ASSERT_TRUE(deliver_to_maildir(maildir, identified()).delivered());
  auto stored = files(maildir / "new");
  ASSERT_EQ(stored.size(), 1u);
  fs::rename(stored[0], maildir / "cur" / (stored[0].filename().string() + ":2,S"));
  Outcome again = deliver_to_maildir(maildir, identified());
  ASSERT_TRUE(again.delivered()) << again.reply.summary();
  EXPECT_TRUE(files(maildir / "new").empty());
  EXPECT_EQ(files(maildir / "cur").size(), 1u);
  EXPECT_TRUE(files(maildir / "tmp").empty());
  // A first delivery does not look in cur/ (no readdir): what the flag is for.
  MaildirMessage first = identified();
  first.may_be_repeat = false;
  ASSERT_TRUE(deliver_to_maildir(maildir, first).delivered());
  EXPECT_EQ(files(maildir / "new").size(), 1u);
}

// A reader that renames the file with its own fields (Dovecot's ",W=<size>")
// still has it matched by the name up to ",S=".
TEST_F(MaildirTest, CopyInCurWithAReadersOwnFieldsIsFound) {
  fs::path maildir = root_ / "kate";
  ASSERT_TRUE(deliver_to_maildir(maildir, identified()).delivered());
  fs::path stored = files(maildir / "new").at(0);
  std::string name = stored.filename().string();
  std::string renamed = name.substr(0, name.find(",S=")) + ",W=999,S=1:2,S";
  fs::rename(stored, maildir / "cur" / renamed);
  ASSERT_TRUE(deliver_to_maildir(maildir, identified()).delivered());
  EXPECT_TRUE(files(maildir / "new").empty());
  EXPECT_EQ(files(maildir / "cur").size(), 1u);
}

// A repeat that finds its copy in new/ neither writes nor links again (a
// reader could move new/<name> to cur/ in between and a link would make a
// second copy): tmp/ sees no file of that name.
TEST_F(MaildirTest, CopyInNewIsNeitherWrittenNorLinkedAgain) {
  fs::path maildir = root_ / "kate";
  ASSERT_TRUE(deliver_to_maildir(maildir, identified()).delivered());
  fs::path stored = files(maildir / "new").at(0);
  // A folder in the way of tmp/<name>: a write there would fail (it can be
  // neither created nor removed as a file); the repeat does not try one.
  fs::create_directory(maildir / "tmp" / stored.filename());
  Outcome again = deliver_to_maildir(maildir, identified());
  ASSERT_TRUE(again.delivered()) << again.reply.summary();
  EXPECT_EQ(files(maildir / "new").size(), 1u);
}

// The folders kept open from an earlier delivery are not used once new/ has
// been replaced by a symbolic link: refused, nothing lands where it points.
TEST_F(MaildirTest, AFolderReplacedByASymlinkAfterADeliveryIsRefused) {
  fs::path maildir = root_ / "kate";
  fs::path elsewhere = root_ / "elsewhere";
  fs::create_directories(elsewhere);
  ASSERT_TRUE(deliver_to_maildir(maildir, identified()).delivered());
  fs::rename(maildir / "new", root_ / "old-new");
  fs::create_directory_symlink(elsewhere, maildir / "new");
  Outcome o = deliver_to_maildir(maildir, identified(1));
  EXPECT_EQ(o.reply.code, 451);
  EXPECT_NE(o.reply.lines.at(0).find("is a symbolic link"), std::string::npos)
      << o.reply.lines.at(0);
  EXPECT_TRUE(files(elsewhere).empty());
  EXPECT_EQ(files(root_ / "old-new").size(), 1u);
}

// Deliveries into one maildir from several threads at once (they share the
// fsync of new/): each is stored once.
TEST_F(MaildirTest, ConcurrentDeliveriesIntoOneMaildirAreEachStored) {
  fs::path maildir = root_ / "kate";
  std::vector<std::thread> threads;
  std::atomic<int> delivered{0};
  for (std::size_t t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (std::size_t i = 0; i < 5; ++i)
        if (deliver_to_maildir(maildir, identified(t * 5 + i)).delivered()) ++delivered;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(delivered.load(), 40);
  EXPECT_EQ(files(maildir / "new").size(), 40u);
}

TEST_F(MaildirTest, StaleTmpFileIsReplaced) {
  fs::path maildir = root_ / "kate";
  fs::path probe = root_ / "probe";
  ASSERT_TRUE(deliver_to_maildir(probe, identified()).delivered());
  std::string name = files(probe / "new").at(0).filename().string();
  fs::create_directories(maildir / "tmp");
  std::ofstream(maildir / "tmp" / name) << "half a message from a crashed attempt";
  Outcome o = deliver_to_maildir(maildir, identified());
  ASSERT_TRUE(o.delivered()) << o.reply.summary();
  EXPECT_TRUE(files(maildir / "tmp").empty());
  ASSERT_EQ(files(maildir / "new").size(), 1u);
  EXPECT_EQ(read(maildir / "new" / name), read(probe / "new" / name));
}

TEST_F(MaildirTest, StaleTmpLinkToTheDeliveredCopyLeavesItWhole) {
  // A crash between link into new/ and unlink of tmp/: both names, one file.
  fs::path maildir = root_ / "kate";
  ASSERT_TRUE(deliver_to_maildir(maildir, identified()).delivered());
  fs::path stored = files(maildir / "new").at(0);
  std::string before = read(stored);
  fs::create_hard_link(stored, maildir / "tmp" / stored.filename());
  ASSERT_TRUE(deliver_to_maildir(maildir, identified()).delivered());
  EXPECT_TRUE(files(maildir / "tmp").empty());
  ASSERT_EQ(files(maildir / "new").size(), 1u);
  EXPECT_EQ(read(stored), before);
}

TEST_F(MaildirTest, SymlinkedFoldersAreRefused) {
  fs::path elsewhere = root_ / "elsewhere";
  fs::create_directories(elsewhere);
  for (const char* sub : {"tmp", "new", "cur", ""}) {
    fs::path maildir = root_ / (std::string("box-") + (*sub ? sub : "itself"));
    fs::path link = maildir;
    if (*sub) {
      fs::create_directories(maildir);
      link = maildir / sub;
    }
    fs::create_directory_symlink(elsewhere, link);
    Outcome o = deliver_to_maildir(maildir, identified());
    EXPECT_TRUE(o.temporary()) << sub;
    EXPECT_EQ(o.reply.code, 451) << sub;
    EXPECT_EQ(o.reply.enhanced, "4.3.0") << sub;
    const std::string& text = o.reply.lines.at(0);
    EXPECT_NE(text.find(link.string() + " is a symbolic link"), std::string::npos) << text;
    EXPECT_TRUE(files(elsewhere).empty()) << sub;
  }
}

}  // namespace
}  // namespace tern::delivery
