// queue::dsn_wanted against the NOTIFY rules of RFC 3461 §4.1 as a table, and
// compose_dsn on the text of the notice: header fields, the three parts of
// the multipart/report (RFC 3464, RFC 6522), RET, ENVID and ORCPT encoding,
// the boundary, size limits; and tests/integration/dsn_check.py (Python's
// email package) reading a composed notice.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "queue/dsn.h"
#include "smtp/headers.h"
#include "util/random.h"
#include "util/text.h"

namespace tern::queue {
namespace {

using smtp::DsnRet;
namespace notify = smtp::notify;

constexpr std::int64_t kArrival = 1700000000000;  // Tue, 14 Nov 2023 22:13:20 UTC
constexpr std::int64_t kNow = kArrival + 3600 * 1000;
constexpr std::int64_t kUntil = kArrival + 2 * 86400 * 1000;  // arrival + expire
constexpr std::string_view kMessage =
    "Received: from client.example.org ([192.0.2.7])\r\n"
    "\tby mail.example.test with ESMTP; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@remote.test\r\n"
    "Subject: Lunch plans\r\n"
    "Message-ID: <m1@example.org>\r\n"
    "\r\n"
    "See you at noon.\r\n";

Envelope envelope() {
  Envelope env;
  env.id = 42;
  env.message_id = "<m1@example.org>";
  env.sender = "alice@example.org";
  env.arrival_ms = kArrival;
  env.recipients.resize(2);
  env.recipients[0].address = "bob@remote.test";
  env.recipients[1].address = "carol@remote.test";
  return env;
}

DsnRecipient failed(std::size_t index) {
  return {index, DsnAction::kFailed, "5.1.1", "550 5.1.1 User unknown", "mx1.remote.test", kNow, 0};
}

DsnRecipient delayed(std::size_t index) {
  DsnRecipient r{index, DsnAction::kDelayed, "4.4.1", "421 4.4.1 Try again later", "", kNow, 0};
  r.remote_mta = "mx1.remote.test";
  r.will_retry_until_ms = kUntil;
  return r;
}

DsnRequest request(const Envelope& env, std::vector<DsnRecipient> recipients) {
  DsnRequest req;
  req.original = &env;
  req.original_content = kMessage;
  req.recipients = std::move(recipients);
  req.reporting_mta = "mail.example.test";
  req.now_ms = kNow;
  return req;
}

std::string compose(const DsnRequest& req) {
  auto dsn = compose_dsn(req);
  EXPECT_TRUE(dsn.has_value());
  return dsn ? dsn->content : std::string();
}

bool has_line(std::string_view text, std::string_view line) {
  return text.starts_with(std::string(line) + "\r\n") ||
         text.find("\n" + std::string(line) + "\r\n") != std::string_view::npos;
}

std::string boundary_of(std::string_view notice) {
  auto at = notice.find("boundary=\"");
  if (at == std::string_view::npos) return {};
  at += 10;
  return std::string(notice.substr(at, notice.find('"', at) - at));
}

// The body parts between the boundary delimiters (RFC 2046 §5.1.1).
std::vector<std::string> parts_of(std::string_view notice) {
  std::string delimiter = "\r\n--" + boundary_of(notice);
  std::vector<std::string> parts;
  std::size_t at = notice.find(delimiter);
  while (at != std::string_view::npos) {
    std::size_t start = notice.find("\r\n", at + delimiter.size()) + 2;
    std::size_t next = notice.find(delimiter, start);
    if (next == std::string_view::npos) break;
    parts.emplace_back(notice.substr(start, next - start));
    at = next;
  }
  return parts;
}

// --- which notices are wanted -------------------------------------------------

TEST(DsnWanted, FollowsNotify) {
  constexpr DsnAction kActions[] = {DsnAction::kFailed, DsnAction::kDelayed, DsnAction::kDelivered,
                                    DsnAction::kRelayed};
  constexpr std::uint8_t kAll = notify::kSuccess | notify::kFailure | notify::kDelay;
  // NOTIFY value → wanted for failed, delayed, delivered, relayed.
  const std::pair<std::uint8_t, std::array<bool, 4>> rows[] = {
      {0, {true, true, false, false}},  // absent: failures and delays, like Postfix
      {notify::kNever, {false, false, false, false}},
      {notify::kSuccess, {false, false, true, true}},
      {notify::kFailure, {true, false, false, false}},
      {notify::kDelay, {false, true, false, false}},
      {notify::kSuccess | notify::kFailure, {true, false, true, true}},
      {kAll, {true, true, true, true}},
  };
  Envelope env = envelope();
  for (const auto& [value, wanted] : rows) {
    Recipient r = env.recipients[0];
    r.notify = value;
    for (std::size_t i = 0; i < 4; ++i)
      EXPECT_EQ(dsn_wanted(env, r, kActions[i]), wanted[i])
          << "NOTIFY=" << smtp::notify_text(value) << " action " << action_name(kActions[i]);
  }
}

TEST(DsnWanted, NeverForTheNullSender) {
  Envelope env = envelope();
  env.sender.clear();
  for (std::uint8_t n : {0, 2, 4, 8, 14}) {
    Recipient r = env.recipients[0];
    r.notify = n;
    for (auto action :
         {DsnAction::kFailed, DsnAction::kDelayed, DsnAction::kDelivered, DsnAction::kRelayed})
      EXPECT_FALSE(dsn_wanted(env, r, action)) << int(n) << " " << action_name(action);
  }
}

// Once-only is the caller's bookkeeping (Recipient::delay_notified, set before
// the notice is composed), so it must not suppress the notice itself.
TEST(DsnWanted, DelayNotifiedFlagIsTheCallersBookkeeping) {
  Envelope env = envelope();
  env.recipients[0].delay_notified = true;
  EXPECT_TRUE(dsn_wanted(env, env.recipients[0], DsnAction::kDelayed));
  EXPECT_TRUE(compose_dsn(request(env, {delayed(0)})));
}

// --- the notice ---------------------------------------------------------------

TEST(DsnCompose, HeaderFields) {
  Envelope env = envelope();
  auto dsn = compose_dsn(request(env, {failed(0)}));
  ASSERT_TRUE(dsn);
  const std::string& text = dsn->content;
  EXPECT_EQ(dsn->recipient, "alice@example.org");
  EXPECT_TRUE(dsn->message_id.starts_with("<") && dsn->message_id.ends_with("@mail.example.test>"));
  EXPECT_TRUE(has_line(text, "From: Mail Delivery System <MAILER-DAEMON@mail.example.test>"));
  EXPECT_TRUE(has_line(text, "To: <alice@example.org>"));
  EXPECT_TRUE(has_line(text, "Subject: Undelivered Mail Returned to Sender"));
  EXPECT_TRUE(has_line(text, "Date: " + smtp::rfc5322_date(kNow / 1000)));
  EXPECT_TRUE(has_line(text, "Message-ID: " + dsn->message_id));
  EXPECT_TRUE(has_line(text, "Auto-Submitted: auto-replied"));
  EXPECT_TRUE(has_line(text, "MIME-Version: 1.0"));
  EXPECT_NE(text.find("Content-Type: multipart/report; report-type=delivery-status;"),
            std::string::npos);
}

TEST(DsnCompose, CrLfAndShortLinesThroughout) {
  Envelope env = envelope();
  DsnRecipient r = failed(0);
  r.diagnostic =
      "550 5.1.1 <bob@remote.test>: Recipient address rejected: this mailbox was "
      "closed in 2019 and nobody reads it any more, please update your address book";
  std::string text = compose(request(env, {r}));
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t eol = text.find('\n', start);
    ASSERT_NE(eol, std::string::npos) << "unterminated last line";
    ASSERT_GT(eol, start) << "bare LF at " << eol;
    EXPECT_EQ(text[eol - 1], '\r') << "bare LF at " << eol;
    EXPECT_LE(eol - 1 - start, 78u) << text.substr(start, eol - start);
    start = eol + 1;
  }
}

TEST(DsnCompose, ThreePartsOfAReport) {
  Envelope env = envelope();
  auto parts = parts_of(compose(request(env, {failed(0)})));
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_TRUE(parts[0].starts_with("Content-Type: text/plain; charset=us-ascii\r\n"));
  EXPECT_NE(parts[0].find("This is the mail system at host mail.example.test."), std::string::npos);
  EXPECT_NE(parts[0].find("<bob@remote.test>: host mx1.remote.test said: 550 5.1.1 User unknown"),
            std::string::npos);
  EXPECT_TRUE(parts[1].starts_with("Content-Type: message/delivery-status\r\n"));
  EXPECT_TRUE(parts[2].starts_with("Content-Type: message/rfc822\r\n"));
}

TEST(DsnCompose, PerMessageAndPerRecipientFields) {
  Envelope env = envelope();
  auto parts = parts_of(compose(request(env, {failed(0)})));
  ASSERT_EQ(parts.size(), 3u);
  const std::string& status = parts[1];
  EXPECT_TRUE(has_line(status, "Reporting-MTA: dns; mail.example.test"));
  EXPECT_TRUE(has_line(status, "Arrival-Date: " + smtp::rfc5322_date(kArrival / 1000)));
  EXPECT_EQ(status.find("Original-Envelope-Id:"), std::string::npos);
  EXPECT_EQ(status.find("Original-Recipient:"), std::string::npos);
  EXPECT_NE(status.find("\r\n\r\nFinal-Recipient: rfc822; bob@remote.test\r\n"
                        "Action: failed\r\n"
                        "Status: 5.1.1\r\n"
                        "Remote-MTA: dns; mx1.remote.test\r\n"
                        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
                        "Last-Attempt-Date: " +
                        smtp::rfc5322_date(kNow / 1000) + "\r\n"),
            std::string::npos)
      << status;
  EXPECT_EQ(status.find("Will-Retry-Until:"), std::string::npos);
}

TEST(DsnCompose, StatusDerivedWhenMissing) {
  Envelope env = envelope();
  env.recipients[0].notify = notify::kSuccess | notify::kFailure | notify::kDelay;
  const std::pair<DsnAction, const char*> cases[] = {{DsnAction::kFailed, "Status: 5.0.0"},
                                                     {DsnAction::kDelayed, "Status: 4.0.0"},
                                                     {DsnAction::kDelivered, "Status: 2.0.0"},
                                                     {DsnAction::kRelayed, "Status: 2.0.0"}};
  for (auto [action, line] : cases) {
    DsnRecipient r{0, action, "", "", "", 0, 0};
    std::string text = compose(request(env, {r}));
    EXPECT_TRUE(has_line(text, line)) << action_name(action);
    EXPECT_TRUE(has_line(text, "Action: " + std::string(action_name(action))));
    EXPECT_EQ(text.find("Diagnostic-Code:"), std::string::npos);
    EXPECT_EQ(text.find("Remote-MTA:"), std::string::npos);
  }
}

TEST(DsnCompose, DelayedNotice) {
  Envelope env = envelope();
  std::string text = compose(request(env, {delayed(0)}));
  std::string until = smtp::rfc5322_date(kUntil / 1000);
  EXPECT_TRUE(has_line(text, "Subject: Delayed Mail (still being retried)"));
  EXPECT_TRUE(has_line(text, "Action: delayed"));
  EXPECT_TRUE(has_line(text, "Will-Retry-Until: " + until));
  auto parts = parts_of(text);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_NE(parts[0].find("keep trying until"), std::string::npos);
  EXPECT_NE(parts[0].find(until.substr(0, 10)), std::string::npos);
  // RET absent: headers only for a delay (RFC 3461 §4.3 leaves it to the MTA).
  EXPECT_TRUE(parts[2].starts_with("Content-Type: text/rfc822-headers\r\n"));
  EXPECT_NE(parts[2].find("Subject: Lunch plans"), std::string::npos);
  EXPECT_EQ(parts[2].find("See you at noon."), std::string::npos);
}

TEST(DsnCompose, SuccessNotices) {
  Envelope env = envelope();
  env.recipients[0].notify = notify::kSuccess;
  env.recipients[1].notify = notify::kSuccess;
  DsnRecipient delivered{0, DsnAction::kDelivered, "2.0.0", "250 2.0.0 Ok", "mx1.remote.test", kNow,
                         0};
  DsnRecipient relayed{1, DsnAction::kRelayed, "", "", "mx1.remote.test", kNow, 0};
  std::string text = compose(request(env, {delivered, relayed}));
  EXPECT_TRUE(has_line(text, "Subject: Successful Mail Delivery Report"));
  EXPECT_TRUE(has_line(text, "Action: delivered"));
  EXPECT_TRUE(has_line(text, "Action: relayed"));
  auto parts = parts_of(text);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_TRUE(parts[2].starts_with("Content-Type: text/rfc822-headers\r\n"));
}

TEST(DsnCompose, WorstActionNamesAMixedNotice) {
  Envelope env = envelope();
  env.recipients[0].notify = notify::kSuccess;
  DsnRecipient delivered{0, DsnAction::kDelivered, "2.0.0", "", "", kNow, 0};
  EXPECT_TRUE(has_line(compose(request(env, {delivered, delayed(1)})),
                       "Subject: Delayed Mail (still being retried)"));
  std::string text = compose(request(env, {delivered, delayed(1), failed(1)}));
  EXPECT_TRUE(has_line(text, "Subject: Undelivered Mail Returned to Sender"));
  EXPECT_TRUE(parts_of(text)[2].starts_with("Content-Type: message/rfc822\r\n"));
}

TEST(DsnCompose, RetChoosesWhatReturns) {
  struct Case {
    DsnRet ret;
    bool failure;
    const char* type;
    bool body;
  };
  const Case cases[] = {
      {DsnRet::kUnspecified, true, "message/rfc822", true},
      {DsnRet::kUnspecified, false, "text/rfc822-headers", false},
      {DsnRet::kFull, true, "message/rfc822", true},
      {DsnRet::kFull, false, "message/rfc822", true},
      {DsnRet::kHeaders, true, "text/rfc822-headers", false},
      {DsnRet::kHeaders, false, "text/rfc822-headers", false},
  };
  for (const auto& c : cases) {
    Envelope env = envelope();
    env.ret = c.ret;
    auto parts = parts_of(compose(request(env, {c.failure ? failed(0) : delayed(0)})));
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_TRUE(parts[2].starts_with("Content-Type: " + std::string(c.type) + "\r\n")) << parts[2];
    EXPECT_NE(parts[2].find("Message-ID: <m1@example.org>"), std::string::npos);
    EXPECT_EQ(parts[2].find("See you at noon.") != std::string::npos, c.body) << c.type;
  }
}

TEST(DsnCompose, LargeMessageReturnsHeadersAndSaysSo) {
  Envelope env = envelope();
  env.ret = DsnRet::kFull;
  DsnRequest req = request(env, {failed(0)});
  req.max_returned = kMessage.size() - 1;
  auto parts = parts_of(compose(req));
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_TRUE(parts[2].starts_with("Content-Type: text/rfc822-headers\r\n"));
  EXPECT_EQ(parts[2].find("See you at noon."), std::string::npos);
  EXPECT_NE(parts[0].find("larger than"), std::string::npos) << parts[0];
  req.max_returned = kMessage.size();
  EXPECT_TRUE(parts_of(compose(req))[2].starts_with("Content-Type: message/rfc822\r\n"));
}

TEST(DsnCompose, EnvidAndOrcptAreXtext) {
  Envelope env = envelope();
  env.envid = "QQ314159+x=y z";
  env.recipients[0].orcpt_type = "rfc822";
  env.recipients[0].orcpt = "Bob+lists@remote.test";
  std::string text = compose(request(env, {failed(0), failed(1)}));
  EXPECT_TRUE(has_line(text, "Original-Envelope-Id: QQ314159+2Bx+3Dy+20z"));
  EXPECT_TRUE(has_line(text, "Original-Recipient: rfc822;Bob+2Blists@remote.test"));
  // ORCPT only where the client gave it: one Original-Recipient for two recipients.
  auto first = text.find("Original-Recipient:");
  EXPECT_EQ(text.find("Original-Recipient:", first + 1), std::string::npos);
  EXPECT_TRUE(has_line(text, "Final-Recipient: rfc822; carol@remote.test"));
}

TEST(DsnCompose, UnwantedRecipientsLeftOut) {
  Envelope env = envelope();
  env.recipients[1].notify = notify::kNever;
  std::string text = compose(request(env, {failed(0), failed(1)}));
  EXPECT_NE(text.find("bob@remote.test"), std::string::npos);
  EXPECT_EQ(text.find("carol@remote.test"), std::string::npos);

  env.recipients[0].notify = notify::kDelay;
  EXPECT_FALSE(compose_dsn(request(env, {failed(0), failed(1)})));
  env.recipients[0].notify = 0;
  env.sender.clear();
  EXPECT_FALSE(compose_dsn(request(env, {failed(0)})));
}

TEST(DsnCompose, BoundaryIsFreshAndOnlyDelimits) {
  Envelope env = envelope();
  auto dsn = compose_dsn(request(env, {failed(0)}));
  ASSERT_TRUE(dsn);
  std::string boundary = boundary_of(dsn->content);
  ASSERT_FALSE(boundary.empty());
  // It carries the new Message-ID's token, which the original cannot contain.
  std::string token = dsn->message_id.substr(1, dsn->message_id.find('@') - 1);
  EXPECT_NE(boundary.find(token), std::string::npos);
  std::size_t count = 0;
  for (auto at = dsn->content.find(boundary); at != std::string::npos;
       at = dsn->content.find(boundary, at + 1))
    ++count;
  EXPECT_EQ(count, 5u);  // the parameter, three part delimiters, the close delimiter
  EXPECT_TRUE(dsn->content.ends_with("\r\n--" + boundary + "--\r\n"));
  EXPECT_NE(boundary_of(compose(request(env, {failed(0)}))), boundary);
}

TEST(DsnCompose, RemoteTextCannotAddFieldsOrParts) {
  Envelope env = envelope();
  DsnRecipient r = failed(0);
  r.diagnostic = "550 5.1.1 no\r\nX-Injected: yes\r\n\r\n--fake";
  r.remote_mta = "mx1.remote.test[192.0.2.25]:25";
  std::string text = compose(request(env, {r}));
  EXPECT_EQ(text.find("\nX-Injected"), std::string::npos);
  EXPECT_EQ(text.find("\n--fake"), std::string::npos);
  EXPECT_TRUE(has_line(text, "Diagnostic-Code: smtp; 550 5.1.1 no X-Injected: yes --fake"));
  EXPECT_TRUE(has_line(text, "Remote-MTA: dns; mx1.remote.test"));
}

// Every CR is followed by LF and every LF preceded by CR (RFC 5321 §2.3.8).
std::string bare_line_end(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n'))
      return "bare CR at " + std::to_string(i);
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
      return "bare LF at " + std::to_string(i);
  }
  return "";
}

TEST(DsnCompose, ReturnedMessageHasOnlyCrLf) {
  struct Case {
    std::string_view original, returned;  // part 3 after its own header
  } cases[] = {
      {"Subject: x\r\n\r\nA\r.\rB\r\n", "Subject: x\r\n\r\nA\r\n.\r\nB\r\n"},
      {"Subject: x\n\nbare\nlf\n", "Subject: x\r\n\r\nbare\r\nlf\r\n"},
      {"Subject: x\r\n\r\nends in CR\r", "Subject: x\r\n\r\nends in CR\r\n"},
      {"Subject: x\r\n\r\nno end", "Subject: x\r\n\r\nno end\r\n"},
  };
  for (const auto& c : cases) {
    Envelope env = envelope();
    env.ret = DsnRet::kFull;
    DsnRequest req = request(env, {failed(0)});
    req.original_content = c.original;
    std::string text = compose(req);
    EXPECT_EQ(bare_line_end(text), "") << util::printable(c.original);
    auto parts = parts_of(text);
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_TRUE(parts[2].ends_with(std::string("\r\n\r\n") + std::string(c.returned)))
        << util::printable(parts[2]);

    env.ret = DsnRet::kHeaders;  // the header section alone
    req = request(env, {failed(0)});
    req.original_content = c.original;
    EXPECT_EQ(bare_line_end(compose(req)), "") << util::printable(c.original);
  }
}

// Text from peers and from the envelope, whatever bytes it holds, stays inside
// its field: no new header field, no MIME boundary, no bare line end.
TEST(DsnCompose, HostileTextStaysInItsField) {
  const std::string hostile[] = {
      "550 5.1.1 no\r\nX-Injected: yes",
      "550 5.1.1 no\nX-Injected: yes",
      "550 5.1.1 no\rX-Injected: yes",
      std::string("550 5.1.1 no\0\x1b[31m\xff\xfe\r\n\r\n--=_tern-dsn-x--\r\nX-Injected: yes", 43),
      "550 5.1.1 " + std::string(5000, 'x') + "\r\nX-Injected: yes",
  };
  for (const auto& text : hostile) {
    Envelope env = envelope();
    env.sender = "alice@example.org\r\nX-Injected: yes";
    env.recipients[0].address = "bob@remote.test\r\nX-Injected: yes";
    DsnRecipient r = failed(0);
    r.diagnostic = text;
    r.remote_mta = text;
    std::string notice = compose(request(env, {r}));
    EXPECT_EQ(bare_line_end(notice), "") << util::printable(text);
    EXPECT_EQ(notice.find("\nX-Injected"), std::string::npos) << util::printable(text);
    EXPECT_EQ(notice.find("\n--=_tern-dsn-x"), std::string::npos) << util::printable(text);
    EXPECT_EQ(notice.find('\0'), std::string::npos);
    EXPECT_EQ(notice.find('\x1b'), std::string::npos);
    EXPECT_EQ(parts_of(notice).size(), 3u);
    EXPECT_TRUE(has_line(notice, "To: <alice@example.org\\x0d\\x0aX-Injected: yes>"));
    EXPECT_NE(notice.find("Final-Recipient: utf-8; bob@remote.test\\x{0D}\\x{0A}X-Injected:"),
              std::string::npos);
  }
}

TEST(DsnCompose, InternationalAddresses) {
  Envelope env = envelope();
  env.smtputf8 = true;
  env.recipients[0].address = "j\xc3\xb6rg@ex\xc3\xa4mple.test";
  env.recipients[0].orcpt_type = "utf-8";
  env.recipients[0].orcpt = "J\xc3\xb6rg+x@ex\xc3\xa4mple.test";
  std::string text = compose(request(env, {failed(0)}));
  auto parts = parts_of(text);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_TRUE(parts[0].starts_with("Content-Type: text/plain; charset=utf-8\r\n"));
  EXPECT_NE(parts[0].find("<j\xc3\xb6rg@ex\xc3\xa4mple.test>"), std::string::npos);
  // RFC 6533 §3: the machine-readable part stays ASCII with \x{...} escapes.
  EXPECT_TRUE(has_line(parts[1], "Final-Recipient: utf-8; j\\x{F6}rg@ex\\x{E4}mple.test"));
  EXPECT_TRUE(
      has_line(parts[1], "Original-Recipient: utf-8;J\\x{F6}rg\\x{2B}x@ex\\x{E4}mple.test"));
  EXPECT_TRUE(parts[2].starts_with("Content-Type: message/global\r\n"));

  env.ret = DsnRet::kHeaders;
  EXPECT_TRUE(parts_of(compose(request(env, {failed(0)})))[2].starts_with(
      "Content-Type: message/global-headers\r\n"));
}

// --- read by Python's email package --------------------------------------------

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  int status = ::pclose(pipe);
  if (status != 0) out += "\n[exit status " + std::to_string(status) + "]";
  return out;
}

TEST(DsnCompose, ParsedByPythonEmail) {
  const char* python = "/usr/bin/python3";
  ASSERT_TRUE(std::filesystem::exists(python)) << python << " is missing: install python3";
  Envelope env = envelope();
  env.envid = "QQ314159";
  env.recipients[1].orcpt_type = "rfc822";
  env.recipients[1].orcpt = "carol@remote.test";
  auto dsn = compose_dsn(request(env, {failed(0), delayed(1)}));
  ASSERT_TRUE(dsn);
  auto file = std::filesystem::temp_directory_path() / ("tern-dsn-" + util::random_uuid() + ".eml");
  std::ofstream(file, std::ios::binary) << dsn->content;
  std::string out = run(std::string(python) +
                        " " TERN_SOURCE_DIR "/tests/integration/dsn_check.py " + file.string());
  std::filesystem::remove(file);
  auto json = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(json.is_discarded()) << out;
  EXPECT_EQ(json["content_type"], "multipart/report");
  EXPECT_EQ(json["report_type"], "delivery-status");
  EXPECT_EQ(json["parts"],
            nlohmann::json({"text/plain", "message/delivery-status", "message/rfc822"}));
  EXPECT_EQ(json["defects"].size(), 0u) << json["defects"];
  EXPECT_EQ(json["headers"]["auto-submitted"], "auto-replied");
  EXPECT_EQ(json["per_message"]["reporting-mta"], "dns; mail.example.test");
  EXPECT_EQ(json["per_message"]["original-envelope-id"], "QQ314159");
  ASSERT_EQ(json["recipients"].size(), 2u);
  EXPECT_EQ(json["recipients"][0]["final-recipient"], "rfc822; bob@remote.test");
  EXPECT_EQ(json["recipients"][0]["action"], "failed");
  EXPECT_EQ(json["recipients"][0]["status"], "5.1.1");
  EXPECT_EQ(json["recipients"][1]["action"], "delayed");
  EXPECT_EQ(json["recipients"][1]["original-recipient"], "rfc822;carol@remote.test");
  EXPECT_EQ(json["returned_kind"], "full");
  EXPECT_EQ(json["original_subject"], "Lunch plans");
}

}  // namespace
}  // namespace tern::queue
