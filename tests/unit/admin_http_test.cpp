// The admin listener's HTTP layer (src/admin/http.h, token.h): requests
// through http-parser with their head and body bounded, pipelined requests
// one at a time, request-targets with path tricks refused, the bearer token.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <filesystem>
#include <fstream>

#include "admin/http.h"
#include "admin/token.h"

namespace tern::admin {
namespace {

using Status = RequestParser::Status;

TEST(AdminHttp, ParsesARequestInPieces) {
  RequestParser p(16384, 65536);
  std::string text =
      "POST /api/queue/7/bounce HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
      "Content-Length: 3\r\n\r\nabc";
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    auto [status, used] = p.feed(text.substr(i, 1));
    ASSERT_EQ(status, Status::kIncomplete) << i;
    ASSERT_EQ(used, 1u);
  }
  auto [status, used] = p.feed(text.substr(text.size() - 1));
  ASSERT_EQ(status, Status::kComplete);
  auto r = p.take();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/api/queue/7/bounce");
  ASSERT_NE(r.header("authorization"), nullptr);
  EXPECT_EQ(*r.header("authorization"), "Bearer t");
  EXPECT_EQ(r.body, "abc");
  EXPECT_TRUE(r.keep_alive);
}

TEST(AdminHttp, PipelinedRequestsOneAtATime) {
  RequestParser p(16384, 65536);
  std::string text = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
  auto [s1, used1] = p.feed(text);
  ASSERT_EQ(s1, Status::kComplete);
  EXPECT_EQ(p.take().target, "/a");
  auto [s2, used2] = p.feed(std::string_view(text).substr(used1));
  ASSERT_EQ(s2, Status::kComplete);
  EXPECT_EQ(used1 + used2, text.size());
  auto b = p.take();
  EXPECT_EQ(b.target, "/b");
  EXPECT_FALSE(b.keep_alive);
}

TEST(AdminHttp, Bounds) {
  RequestParser head(1024, 100);
  std::string big = "GET / HTTP/1.1\r\nX: " + std::string(5000, 'a');
  auto [s, used] = head.feed(big);
  EXPECT_EQ(s, Status::kHeadTooLarge);
  EXPECT_LE(used, 1024u);  // nothing past the bound is parsed
  RequestParser declared(1024, 100);
  EXPECT_EQ(declared.feed("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n").first,
            Status::kBodyTooLarge);
  RequestParser chunked(1024, 100);
  EXPECT_EQ(chunked
                .feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n" +
                      std::string(101, 'x'))
                .first,
            Status::kBodyTooLarge);
  for (const std::string& bad : std::vector<std::string>{
           "GARBAGE\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET / HTTP/1.1\r\nHost x\r\n\r\n",
           std::string("GET /\0 HTTP/1.1\r\n\r\n", 19)}) {
    RequestParser p(1024, 100);
    EXPECT_EQ(p.feed(bad).first, Status::kBad) << bad;
  }
}

TEST(AdminHttp, TargetsWithPathTricksAreRefused) {
  auto t = parse_target("/api/trail?address=kate%40example.test&x=a+b");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->segments, (std::vector<std::string>{"api", "trail"}));
  EXPECT_EQ(t->query.at("address"), "kate@example.test");
  EXPECT_EQ(t->query.at("x"), "a b");
  EXPECT_TRUE(parse_target("/")->segments.empty());
  for (const char* bad :
       {"/api/queue/../../etc", "/api/queue/%2e%2e/x", "/api/%2E%2E", "//api", "/api//queue",
        "/api/queue/", "/./api", "/api/1%00", "/api/1%2fbounce", "/%", "/%zz", "*",
        "http://evil.test/api", "/api?x=%", "/api?a=b%00c", "/api?a%00=b", ""}) {
    EXPECT_FALSE(parse_target(bad)) << bad;
  }
}

TEST(AdminHttp, ResponsesCarryTheSecurityHeaders) {
  Response r;
  r.status = 401;
  r.body = "{}";
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  auto text = serialize(r, true);
  EXPECT_EQ(text.rfind("HTTP/1.1 401 Unauthorized\r\n", 0), 0u);
  for (const char* h : {"Content-Length: 2\r\n", "X-Content-Type-Options: nosniff\r\n",
                        "Cache-Control: no-store\r\n", "WWW-Authenticate: Bearer\r\n",
                        "Connection: keep-alive\r\n"})
    EXPECT_NE(text.find(h), std::string::npos) << h;
  EXPECT_NE(serialize(r, false).find("Connection: close\r\n"), std::string::npos);
}

TEST(AdminToken, CreatedOnceThenRead) {
  auto dir = std::filesystem::temp_directory_path() / ("tern-token-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  auto file = dir / "var" / "admin.token";
  auto token = load_or_create_token(file);
  EXPECT_EQ(token.size(), 64u);
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(load_or_create_token(file), token);
  EXPECT_TRUE(bearer_matches("Bearer " + token, token));
  EXPECT_TRUE(bearer_matches("bearer " + token, token));
  EXPECT_FALSE(bearer_matches("Bearer " + token.substr(1), token));
  EXPECT_FALSE(bearer_matches("Basic " + token, token));
  EXPECT_FALSE(bearer_matches(token, token));
  EXPECT_FALSE(bearer_matches("", token));
  chmod(file.c_str(), 0644);
  EXPECT_THROW(load_or_create_token(file), std::runtime_error);  // others could read it
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tern::admin
