// Least privilege, the parts that need no root: the `user` key, the account
// lookup's refusals, the folders serve prepares, and the explanation of a
// folder the user cannot reach (privileges.h). The drop itself is tested by
// tests/integration/test_privileges.py, which starts tern serve as root.
#include "server/privileges.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>

namespace tern::server {
namespace {

namespace fs = std::filesystem;

config::Config parse(const std::string& top) {
  return config::parse(top +
                           "hostname = \"mx.example.test\"\n"
                           "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:2525\"\n",
                       "/etc/tern/tern.toml");
}

TEST(Privileges, UserKeyDefaultsToTern) {
  EXPECT_EQ(parse("").user, "tern");
  EXPECT_EQ(parse("user = \"_tern\"\n").user, "_tern");
}

TEST(Privileges, UserKeyMustBeAName) {
  for (const char* bad : {"user = \"\"\n", "user = \"a b\"\n", "user = \"a:b\"\n", "user = 7\n"}) {
    try {
      parse(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const config::ConfigError& e) {
      EXPECT_EQ(e.key, "user") << bad;
      EXPECT_EQ(e.line, 1u) << bad;
    }
  }
}

TEST(Privileges, MissingUserIsExplained) {
  try {
    lookup_account("no-such-user-for-tern");
    FAIL() << "no error";
  } catch (const PrivilegeError& e) {
    EXPECT_STREQ(e.what(),
                 "user \"no-such-user-for-tern\" does not exist: create it (useradd --system "
                 "--no-create-home no-such-user-for-tern) or set user in the configuration");
  }
}

TEST(Privileges, RootIsRefused) {
  try {
    lookup_account("root");
    FAIL() << "root accepted";
  } catch (const PrivilegeError& e) {
    EXPECT_NE(std::string(e.what()).find("tern does not run as root"), std::string::npos);
  }
}

TEST(Privileges, ServeFoldersAreSpoolLogAndEachMaildirOnce) {
  auto c = config::parse(
      "hostname = \"mx.example.test\"\n"
      "[spool]\npath = \"/srv/tern/spool\"\n[domains]\naccepted = "
      "[\"example.test\"]\n[log]\ndirectory = \"/srv/tern/log\"\n"
      "[[mailbox]]\naddress = \"kate@example.test\"\nmaildir = \"/srv/mail/kate\"\n"
      "[[mailbox]]\naddress = \"k2@example.test\"\nmaildir = \"/srv/mail/./kate\"\n"
      "[[mailbox]]\naddress = \"lm@example.test\"\nlmtp = \"127.0.0.1:24\"\n"
      "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:2525\"\n",
      "/etc/tern/tern.toml");
  auto folders = serve_folders(c);
  ASSERT_EQ(folders.size(), 3u);
  EXPECT_EQ(folders[0].path, "/srv/tern/spool");
  EXPECT_TRUE(folders[0].strict);
  EXPECT_EQ(folders[1].path, "/srv/tern/log");
  EXPECT_TRUE(folders[1].strict);
  EXPECT_EQ(folders[2].path, "/srv/mail/kate");
  EXPECT_FALSE(folders[2].strict);  // a Maildir may be shared with an IMAP server's group
}

class Reachability : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("tern-privileges-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(root_ / "outer" / "inner" / "spool");
    ::chmod((root_ / "outer").c_str(), 0700);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string me() const { return ::getpwuid(::geteuid())->pw_name; }

  fs::path root_;
};

TEST_F(Reachability, AllowedEverywhereIsReachable) {
  auto allow = [](const fs::path&, int) { return true; };
  EXPECT_EQ(unreachable(root_ / "outer/inner/spool", allow), std::nullopt);
}

TEST_F(Reachability, NamesTheAncestorThatBlocks) {
  fs::path outer = root_ / "outer";
  std::set<int> asked;
  auto deny_outer = [&](const fs::path& p, int mode) {
    if (p == outer) asked.insert(mode);
    return !(p == outer && (mode & X_OK));
  };
  auto why = unreachable(outer / "inner" / "spool", deny_outer);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, outer.string() + " is drwx------ " + me() + ":" +
                      ::getgrgid(::getegid())->gr_name +
                      ", which it may not search (x): make it searchable (chmod o+x " +
                      outer.string() + ") or move the folder elsewhere");
  EXPECT_EQ(asked, std::set<int>{X_OK});  // an ancestor needs search only, not read
}

TEST_F(Reachability, TheFirstBlockingAncestorCounts) {
  auto deny_from_outer = [&](const fs::path& p, int) {
    return p.string().find("outer") == std::string::npos;
  };
  auto why = unreachable(root_ / "outer/inner/spool", deny_from_outer);
  ASSERT_TRUE(why);
  EXPECT_EQ(why->rfind((root_ / "outer").string() + " is d", 0), 0u) << *why;
}

TEST_F(Reachability, TheFolderItselfMustBeReadAndWritten) {
  fs::path spool = root_ / "outer/inner/spool";
  auto read_only = [&](const fs::path& p, int mode) { return !(p == spool && (mode & W_OK)); };
  auto why = unreachable(spool, read_only);
  ASSERT_TRUE(why);
  EXPECT_EQ(why->rfind(spool.string() + " itself is d", 0), 0u) << *why;
}

TEST_F(Reachability, DescribeModeIsLikeLs) {
  fs::path f = root_ / "file";
  {
    std::FILE* out = std::fopen(f.c_str(), "w");
    std::fclose(out);
  }
  ::chmod(f.c_str(), 0640);
  std::string group = ::getgrgid(::getegid())->gr_name;
  EXPECT_EQ(describe_mode(f), "-rw-r----- " + me() + ":" + group);
  fs::create_symlink(f, root_ / "link");
  EXPECT_EQ(describe_mode(root_ / "link").substr(0, 1), "l");
  EXPECT_EQ(describe_mode(root_ / "none").rfind("missing", 0), 0u);
}

}  // namespace
}  // namespace tern::server
