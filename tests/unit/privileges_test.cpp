// Least privilege short of the drop itself: the `user` key, the account
// lookup's refusals, the folders serve prepares and how (as root: what is
// created, what is taken over, what is never followed), the group check, and
// the explanation of a folder the user cannot reach (privileges.h). The drop
// is tested by tests/integration/test_privileges.py, which starts tern serve
// as root. The tests that chown need root: they fail (never skip) without it.
#include "server/privileges.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
  ASSERT_EQ(folders.size(), 4u);
  EXPECT_EQ(folders[0].path, "/srv/tern/spool");
  EXPECT_TRUE(folders[0].strict());
  EXPECT_EQ(folders[0].kind, FolderKind::kSpool);
  EXPECT_EQ(folders[1].path, "/srv/tern/log");
  EXPECT_TRUE(folders[1].strict());
  EXPECT_EQ(folders[1].kind, FolderKind::kLog);
  // sendmail's maildrop: next to the spool by default, never inside it.
  EXPECT_EQ(folders[2].path, "/srv/tern/maildrop");
  EXPECT_FALSE(folders[2].strict());  // its problem is a warning: mail is still served
  EXPECT_EQ(folders[2].kind, FolderKind::kMaildrop);
  EXPECT_EQ(folders[3].path, "/srv/mail/kate");
  EXPECT_FALSE(folders[3].strict());  // a Maildir may be shared with an IMAP server's group
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

// prepare_folders as root for the account "nobody", in a fresh folder.
class PrepareFolders : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "these tests chown: run them as root (as CI does)";
    root_ = fs::temp_directory_path() /
            ("tern-prepare-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    passwd* pw = ::getpwnam("nobody");
    ASSERT_NE(pw, nullptr);
    nobody_ = Account{pw->pw_name, pw->pw_uid, pw->pw_gid};
  }
  void TearDown() override {
    after_mkdir_for_tests = nullptr;
    fs::remove_all(root_);
  }

  static struct stat lstat_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st;
  }
  static void touch(const fs::path& p, mode_t mode = 0644) {
    std::FILE* out = std::fopen(p.c_str(), "w");
    ASSERT_NE(out, nullptr) << p;
    std::fclose(out);
    ::chmod(p.c_str(), mode);
  }
  // A folder root made, mode 0755, holding names.
  void root_folder(const fs::path& dir, std::initializer_list<const char*> names) {
    fs::create_directories(dir);
    ::chmod(dir.c_str(), 0755);
    for (const char* n : names) touch(dir / n);
  }
  std::string refusal(const Folder& f) {
    try {
      prepare_folders({f}, &nobody_, Prepare::kCreate);
    } catch (const PrivilegeError& e) {
      return e.what();
    }
    return "";
  }

  fs::path root_;
  Account nobody_;
};

TEST_F(PrepareFolders, CreatesEachMissingFolder0700ForTheUser) {
  fs::path spool = root_ / "srv" / "tern" / "spool";
  prepare_folders({{spool, "spool folder", FolderKind::kSpool}}, &nobody_, Prepare::kCreate);
  for (const fs::path& p : {root_ / "srv", root_ / "srv" / "tern", spool}) {
    auto st = lstat_of(p);
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << p;
    EXPECT_EQ(st.st_mode & 07777, 0700u) << p;
    EXPECT_EQ(st.st_uid, nobody_.uid) << p;
    EXPECT_EQ(st.st_gid, nobody_.gid) << p;
  }
}

// Whoever may write to the parent (the owner of /home/alice for the Maildir
// /home/alice/Maildir) swaps a symbolic link in between the mkdir and the
// chmod/chown: what it points to must stay as it was.
TEST_F(PrepareFolders, ALinkSwappedInAfterTheMkdirIsNeverFollowed) {
  fs::path target = root_ / "precious";
  touch(target, 0644);
  fs::path spool = root_ / "spool";
  after_mkdir_for_tests = [&](const fs::path& made) {
    if (made != spool) return;
    fs::remove(made);
    fs::create_symlink(target, made);
  };
  std::string why = refusal({spool, "spool folder", FolderKind::kSpool});
  EXPECT_NE(why.find("the spool folder " + spool.string() +
                     " was replaced while tern created it (by a symbolic link or a file)"),
            std::string::npos)
      << why;
  auto st = lstat_of(target);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_uid, 0u);
  // A Maildir the same: a warning (it is one mailbox), and nothing followed.
  fs::path maildir = root_ / "alice" / "Maildir";
  fs::create_directories(maildir.parent_path());
  spool = maildir;
  EXPECT_EQ(refusal({maildir, "Maildir of alice@example.test", FolderKind::kMaildir}), "");
  st = lstat_of(target);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_TRUE(S_ISLNK(lstat_of(maildir).st_mode));
}

TEST_F(PrepareFolders, AFolderOfAnotherUserSwappedInIsRefused) {
  fs::path log = root_ / "log";
  passwd* daemon = ::getpwnam("daemon");
  ASSERT_NE(daemon, nullptr);
  after_mkdir_for_tests = [&](const fs::path& made) {
    fs::remove(made);
    fs::create_directory(made);
    ASSERT_EQ(::chown(made.c_str(), daemon->pw_uid, daemon->pw_gid), 0);
  };
  std::string why = refusal({log, "log folder", FolderKind::kLog});
  EXPECT_NE(why.find("was replaced while tern created it (by a folder of another user)"),
            std::string::npos)
      << why;
  EXPECT_EQ(lstat_of(log).st_uid, daemon->pw_uid);
}

TEST_F(PrepareFolders, RootsFolderWithOtherFilesIsNotTakenOver) {
  fs::path log = root_ / "var-log";
  root_folder(log, {"smtp-receive-20261203.log", "syslog"});
  EXPECT_EQ(
      refusal({log, "log folder", FolderKind::kLog}),
      "the log folder " + log.string() + " belongs to root and holds \"syslog\", which is " +
          "not tern's: tern takes over only an empty folder or one with its own files; give " +
          "tern a folder of its own (for example " + (log / "tern").string() + ")");
  fs::path spool = root_ / "lib";
  root_folder(spool, {"CURRENT", "passwd"});
  EXPECT_NE(refusal({spool, "spool folder", FolderKind::kSpool}).find("holds \"passwd\""),
            std::string::npos);
  for (const fs::path& p : {log, spool}) {
    auto st = lstat_of(p);
    EXPECT_EQ(st.st_mode & 07777, 0755u) << p;
    EXPECT_EQ(st.st_uid, 0u) << p;
  }
}

TEST_F(PrepareFolders, RootsFolderHoldingTernsOwnFilesIsTakenOver) {
  fs::path empty = root_ / "empty";
  fs::path spool = root_ / "spool";
  fs::path log = root_ / "log";
  fs::path maildir = root_ / "Maildir";
  root_folder(empty, {});
  root_folder(spool,
              {"CURRENT", "IDENTITY", "LOCK", "LOG", "LOG.old.1764763200000000", "MANIFEST-000005",
               "OPTIONS-000007", "000004.log", "000009.sst", "control.sock"});
  root_folder(log, {"smtp-receive-20261203.log", "message-tracking-20261203.log"});
  root_folder(maildir, {});
  for (const char* sub : {"tmp", "new", "cur"}) fs::create_directory(maildir / sub);
  prepare_folders({{empty, "spool folder", FolderKind::kSpool},
                   {spool, "spool folder", FolderKind::kSpool},
                   {log, "log folder", FolderKind::kLog},
                   {maildir, "Maildir of kate@example.test", FolderKind::kMaildir}},
                  &nobody_, Prepare::kCreate);
  for (const fs::path& p : {empty, spool, log}) {
    auto st = lstat_of(p);
    EXPECT_EQ(st.st_mode & 07777, 0700u) << p;
    EXPECT_EQ(st.st_uid, nobody_.uid) << p;
  }
  EXPECT_EQ(lstat_of(maildir).st_uid, nobody_.uid);
  EXPECT_EQ(lstat_of(spool / "CURRENT").st_uid, 0u) << "what is inside is left as it is";
}

// One mailbox owner's doing never stops tern: a warning, and nothing touched.
TEST_F(PrepareFolders, AMaildirTernCannotUseIsAWarning) {
  fs::path elsewhere = root_ / "elsewhere";
  root_folder(elsewhere, {});
  fs::path linked = root_ / "linked";
  fs::create_symlink(elsewhere, linked);
  fs::path file = root_ / "file";
  touch(file);
  fs::path foreign = root_ / "home";
  root_folder(foreign, {".bashrc"});
  fs::path spool = root_ / "spool";
  prepare_folders({{spool, "spool folder", FolderKind::kSpool},
                   {linked, "Maildir of a@example.test", FolderKind::kMaildir},
                   {file, "Maildir of b@example.test", FolderKind::kMaildir},
                   {foreign, "Maildir of c@example.test", FolderKind::kMaildir}},
                  &nobody_, Prepare::kCreate);
  EXPECT_EQ(lstat_of(spool).st_uid, nobody_.uid) << "the folders after them are prepared";
  EXPECT_EQ(lstat_of(linked).st_uid, 0u) << "the link itself is not lchown'ed";
  EXPECT_EQ(lstat_of(elsewhere).st_uid, 0u);
  EXPECT_EQ(lstat_of(elsewhere).st_mode & 07777, 0755u);
  EXPECT_EQ(lstat_of(foreign).st_uid, 0u);
  EXPECT_EQ(lstat_of(foreign).st_mode & 07777, 0755u);
  // The same for the spool stops tern.
  EXPECT_NE(refusal({file, "spool folder", FolderKind::kSpool}).find("is not a folder"),
            std::string::npos);
  EXPECT_NE(refusal({linked, "spool folder", FolderKind::kSpool}).find("is a symbolic link"),
            std::string::npos);
}

// Run in a child (setgroups changes the process): 0 when refuse_root_group
// answered as expected with groups set, 1 otherwise.
int groups_check_in_child(const std::vector<gid_t>& groups, bool expect_refusal) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(groups.size(), groups.data()) != 0) ::_exit(2);
    bool refused = false;
    try {
      refuse_root_group("someone");
    } catch (const PrivilegeError& e) {
      refused = std::string(e.what()) ==
                "user \"someone\" is a member of group root: tern does not run with it";
    }
    ::_exit(refused == expect_refusal ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}

TEST(PrivilegesGroups, RootGroupIsFoundAmongManyGroups) {
  ASSERT_EQ(::geteuid(), 0u) << "setgroups needs root: run as root (as CI does)";
  std::vector<gid_t> many;
  for (gid_t g = 20000; g < 20300; ++g) many.push_back(g);  // more than 256
  EXPECT_EQ(groups_check_in_child(many, false), 0);
  many.push_back(0);
  EXPECT_EQ(groups_check_in_child(many, true), 0);
  EXPECT_EQ(groups_check_in_child({0}, true), 0);
}

}  // namespace
}  // namespace tern::server
