// The protocol core without I/O: command lines, paths and addresses (RFC 5321
// §4.1.2), ESMTP parameters and xtext (RFC 3461), the line splitter, headers.
#include <gtest/gtest.h>

#include "smtp/address.h"
#include "smtp/command.h"
#include "smtp/headers.h"
#include "smtp/input_buffer.h"
#include "smtp/params.h"

#include <cstring>

namespace tern::smtp {
namespace {

TEST(Command, VerbsAreCaseInsensitive) {
  EXPECT_EQ(parse_command("ehlo x").verb, Verb::kEhlo);
  EXPECT_EQ(parse_command("Mail FROM:<a@b>").verb, Verb::kMail);
  EXPECT_EQ(parse_command("STARTTLS").verb, Verb::kStartTls);
  EXPECT_EQ(parse_command("MAILX FROM:<a@b>").verb, Verb::kUnknown);
  EXPECT_EQ(parse_command("").verb, Verb::kUnknown);
}

TEST(Command, ArgumentIsTrimmed) {
  auto c = parse_command("RCPT TO: <a@b>   ");
  EXPECT_EQ(c.argument, "TO: <a@b>");
  EXPECT_EQ(parse_command("DATA").argument, "");
}

struct PathCase {
  const char* text;
  PathStatus status;
  const char* address;  // local@domain when ok
  const char* rest = "";
};

const PathCase kPaths[] = {
    {"<kate@fabrikam.com>", PathStatus::kOk, "kate@fabrikam.com"},
    {" <kate@fabrikam.com> NOTIFY=SUCCESS", PathStatus::kOk, "kate@fabrikam.com", "NOTIFY=SUCCESS"},
    {"kate@fabrikam.com", PathStatus::kOk, "kate@fabrikam.com"},
    {"kate@fabrikam.com SIZE=10", PathStatus::kOk, "kate@fabrikam.com", "SIZE=10"},
    {"<\"kate smith\"@fabrikam.com>", PathStatus::kOk, "\"kate smith\"@fabrikam.com"},
    {"<@relay.example,@b.example:kate@fabrikam.com>", PathStatus::kOk, "kate@fabrikam.com"},
    {"<kate@[192.0.2.1]>", PathStatus::kOk, "kate@[192.0.2.1]"},
    {"<kate@[IPv6:2001:db8::1]>", PathStatus::kOk, "kate@[IPv6:2001:db8::1]"},
    {"<user%other@ours.example>", PathStatus::kOk, "user%other@ours.example"},
    {"<other!user@ours.example>", PathStatus::kOk, "other!user@ours.example"},
    {"<\"user@other\"@ours.example>", PathStatus::kOk, "\"user@other\"@ours.example"},
    {"<user@other@ours.example>", PathStatus::kSyntax, ""},
    {"<kate@fabrikam..com>", PathStatus::kSyntax, ""},
    {"<kate.@fabrikam.com>", PathStatus::kSyntax, ""},
    {"<kate@-fabrikam.com>", PathStatus::kSyntax, ""},
    {"<kate@fabrikam_x.com>", PathStatus::kSyntax, ""},
    {"<kate@[300.1.1.1]>", PathStatus::kSyntax, ""},
    {"<kate@fabrikam.com", PathStatus::kSyntax, ""},
    {"<kate@fabrikam.com>x", PathStatus::kSyntax, ""},
    {"<a b@fabrikam.com>", PathStatus::kSyntax, ""},
    {"<kate>", PathStatus::kSyntax, ""},
    {"", PathStatus::kSyntax, ""},
    {"<kåte@fabrikam.com>", PathStatus::kNeedsUtf8, ""},
    {"<k\xffte@fabrikam.com>", PathStatus::kBadUtf8, ""},
    {"<kate@fabrik\xc3m.com>", PathStatus::kBadUtf8, ""},
    {"<k\xc0\xafte@fabrikam.com>", PathStatus::kBadUtf8, ""},
};

TEST(Path, Utf8AddressesMustBeWellFormed) {
  EXPECT_EQ(parse_path("<k\xc3\xa5te@fabrikam.com>", true).status, PathStatus::kOk);
  EXPECT_EQ(parse_path("<k\xe5te@fabrikam.com>", true).status, PathStatus::kBadUtf8);
  EXPECT_EQ(parse_path("<kate@\xed\xa0\x80.com>", true).status, PathStatus::kBadUtf8);
}

TEST(Path, Table) {
  for (const auto& c : kPaths) {
    auto p = parse_path(c.text, false);
    EXPECT_EQ(p.status, c.status) << c.text;
    if (c.status == PathStatus::kOk) {
      EXPECT_EQ(p.address.str(), c.address) << c.text;
      EXPECT_EQ(p.rest, c.rest) << c.text;
    }
  }
}

TEST(Path, NullAndPostmaster) {
  EXPECT_TRUE(parse_path("<>", false).null_path);
  EXPECT_TRUE(parse_path("<> SIZE=5", false).null_path);
  auto pm = parse_path("<Postmaster>", false);
  EXPECT_EQ(pm.status, PathStatus::kOk);
  EXPECT_TRUE(pm.bare_postmaster);
}

TEST(Path, Limits) {
  std::string local(65, 'a');
  EXPECT_EQ(parse_path("<" + local + "@x.example>", false).status, PathStatus::kTooLong);
  EXPECT_EQ(parse_path("<" + std::string(64, 'a') + "@x.example>", false).status, PathStatus::kOk);
  std::string domain;
  for (int i = 0; i < 30; ++i) domain += "abcdefghi.";
  domain += "example";
  EXPECT_NE(parse_path("<a@" + domain + ">", false).status, PathStatus::kOk);
}

TEST(Path, Utf8WhenDeclared) {
  auto p = parse_path("<kåte@fåbrikam.com>", true);
  EXPECT_EQ(p.status, PathStatus::kOk);
  EXPECT_EQ(p.address.str(), "kåte@fåbrikam.com");
}

TEST(Address, UnquotedLocalPart) {
  auto p = parse_path("<\"kate\\\"s\"@x.example>", false);
  ASSERT_EQ(p.status, PathStatus::kOk);
  EXPECT_EQ(p.address.unquoted_local(), "kate\"s");
}

TEST(HeloDomain, Validity) {
  EXPECT_TRUE(valid_helo_domain("contoso.com"));
  EXPECT_TRUE(valid_helo_domain("my_host.local"));
  EXPECT_TRUE(valid_helo_domain("[192.0.2.5]"));
  EXPECT_TRUE(valid_helo_domain("localhost"));
  EXPECT_FALSE(valid_helo_domain(""));
  EXPECT_FALSE(valid_helo_domain("bad!domain"));
  EXPECT_FALSE(valid_helo_domain("a b"));
  EXPECT_FALSE(valid_helo_domain(".contoso.com"));
  EXPECT_FALSE(valid_helo_domain("[not.an.ip]"));
}

TEST(Params, MailParametersParsed) {
  auto r = parse_mail_params("SIZE=1000 BODY=8BITMIME RET=FULL ENVID=abc+2Bdef SMTPUTF8", false);
  ASSERT_TRUE(r.params);
  EXPECT_EQ(*r.params->size, 1000u);
  EXPECT_EQ(r.params->body, BodyType::k8BitMime);
  EXPECT_EQ(r.params->ret, DsnRet::kFull);
  EXPECT_EQ(r.params->envid, "abc+def");
  EXPECT_TRUE(r.params->smtputf8);
}

TEST(Params, MailParameterErrors) {
  EXPECT_EQ(parse_mail_params("SIZE=abc", false).error.code, 501);
  EXPECT_EQ(parse_mail_params("SIZE=1 SIZE=2", false).error.code, 501);
  EXPECT_EQ(parse_mail_params("BODY=9BIT", false).error.code, 501);
  EXPECT_EQ(parse_mail_params("RET=ALL", false).error.code, 501);
  EXPECT_EQ(parse_mail_params("AUTH=<>", false).error.code, 555);  // not offered
  EXPECT_TRUE(parse_mail_params("AUTH=<>", true).params);
  EXPECT_EQ(parse_mail_params("X-FOO", false).error.code, 555);
  EXPECT_EQ(parse_mail_params("=x", false).error.code, 501);
  EXPECT_EQ(parse_mail_params("ENVID=" + std::string(101, 'a'), false).error.code, 501);
}

TEST(Params, RcptParameters) {
  auto r = parse_rcpt_params("notify=success,Failure orcpt=rfc822;a+2Bb@x");
  ASSERT_TRUE(r.params);
  EXPECT_EQ(r.params->notify, notify::kSuccess | notify::kFailure);
  EXPECT_EQ(r.params->orcpt, "a+b@x");
  EXPECT_EQ(parse_rcpt_params("NOTIFY=NEVER").params->notify, notify::kNever);
  EXPECT_FALSE(parse_rcpt_params("ORCPT=nosemicolon").params);
  EXPECT_FALSE(parse_rcpt_params("NOTIFY=").params);
}

TEST(Xtext, RoundTrip) {
  EXPECT_EQ(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
  EXPECT_EQ(*xtext_decode("a+2Bb+3Dc+20d"), "a+b=c d");
  EXPECT_FALSE(xtext_decode("a+2"));
  EXPECT_FALSE(xtext_decode("a+zz"));
  EXPECT_FALSE(xtext_decode("a=b"));
  EXPECT_EQ(notify_text(notify::kSuccess | notify::kDelay), "SUCCESS,DELAY");
}

void put(InputBuffer& in, std::string_view s) {
  std::memcpy(in.prepare(s.size()), s.data(), s.size());
  in.commit(s.size());
}

TEST(InputBuffer, SplitsLinesOnCrlfAndBareLf) {
  InputBuffer in;
  put(in, "EHLO a\r\nNOOP\nQU");
  auto l1 = in.next_line(512);
  EXPECT_EQ(l1.line, "EHLO a");
  EXPECT_TRUE(l1.crlf);
  auto l2 = in.next_line(512);
  EXPECT_EQ(l2.line, "NOOP");
  EXPECT_FALSE(l2.crlf);
  EXPECT_EQ(in.next_line(512).status, InputBuffer::LineStatus::kNeedMore);
  put(in, "IT\r\n");
  EXPECT_EQ(in.next_line(512).line, "QUIT");
}

TEST(InputBuffer, LongLineIsDiscardedUpToItsEnd) {
  InputBuffer in;
  for (int i = 0; i < 100; ++i) {
    put(in, std::string(1000, 'x'));
    EXPECT_EQ(in.next_line(512).status, InputBuffer::LineStatus::kNeedMore);
    EXPECT_LE(in.data().size(), 1000u);  // bounded
  }
  put(in, "tail\r\nNOOP\r\n");
  EXPECT_EQ(in.next_line(512).status, InputBuffer::LineStatus::kTooLong);
  EXPECT_EQ(in.next_line(512).line, "NOOP");
}

TEST(Headers, ScanFindsMessageIdAndCountsReceived) {
  std::string msg =
      "Received: from a\r\n\tby b; date\r\nReceived: from c\r\nmessage-id:\r\n <x@y>\r\nSubject: "
      "s\r\n\r\n"
      "Message-ID: <not@header>\r\n";
  auto scan = scan_headers(msg);
  EXPECT_EQ(scan.received_count, 2u);
  ASSERT_TRUE(scan.message_id);
  EXPECT_EQ(*scan.message_id, "<x@y>");
  EXPECT_EQ(msg.substr(scan.header_end, 2), "\r\n");
  EXPECT_EQ(*header_value(msg, "subject"), "s");
}

TEST(Headers, NoHeaders) {
  auto scan = scan_headers("just a body line without colon\r\n");
  EXPECT_FALSE(scan.message_id);
  EXPECT_EQ(scan.header_end, 0u);
}

}  // namespace
}  // namespace tern::smtp
