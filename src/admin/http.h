// HTTP/1.1 for the admin listener (RFC 9112): requests parsed by Debian's
// http-parser (never by hand), with the head (request line and header
// fields) and the body bounded; responses written with Content-Length and
// the security headers every answer carries. No I/O here: the listener
// (admin_server.h) feeds bytes in and writes what serialize() returns.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern::admin {

struct Request {
  std::string method;  // "GET", "POST", …
  std::string target;  // the request-target as sent ("/api/queue?x=1")
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  bool keep_alive = true;
  // The first field of that name (lower case), or null.
  const std::string* header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // added after the common ones
  bool close = false;                                        // Connection: close, then close
};

// The status line, the headers (Content-Type, Content-Length, Connection,
// X-Content-Type-Options: nosniff, Cache-Control: no-store, then
// response.headers) and the body.
std::string serialize(const Response& response, bool keep_alive);

// The reason phrase of status ("Not Found").
std::string_view reason_phrase(int status);

// One request after another from the bytes of a connection.
class RequestParser {
 public:
  enum class Status {
    kIncomplete,    // more bytes needed
    kComplete,      // take() the request
    kBad,           // malformed: 400, then close
    kHeadTooLarge,  // request line and header fields over max_head: 431, then close
    kBodyTooLarge,  // over max_body: 413, then close
  };

  RequestParser(std::size_t max_head, std::size_t max_body);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses from data; returns the status and how many bytes it used (the rest
  // belongs to the next request: feed it again after take()).
  std::pair<Status, std::size_t> feed(std::string_view data);
  // The complete request; the parser starts on the next one.
  Request take();
  // Whether part of a request has arrived (a request in progress).
  bool started() const { return started_; }

 private:
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, std::size_t n);
  static int on_header_field(http_parser* p, const char* at, std::size_t n);
  static int on_header_value(http_parser* p, const char* at, std::size_t n);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, std::size_t n);
  static int on_message_complete(http_parser* p);
  void reset();

  std::size_t max_head_, max_body_;
  http_parser parser_{};
  http_parser_settings settings_{};
  Request request_;
  std::size_t head_bytes_ = 0;
  bool in_value_ = false;
  bool headers_done_ = false;
  bool complete_ = false;
  bool started_ = false;
  bool body_too_large_ = false;
};

// A request-target split into its path segments and query parameters, both
// percent-decoded; nullopt for a target that is not an origin-form path or
// whose path holds an empty, "." or ".." segment or a NUL (or whose query
// holds a NUL), whatever the encoding (RFC 3986 §3.3: such paths never reach a route).
struct Target {
  std::vector<std::string> segments;  // "/api/queue/7" → {"api", "queue", "7"}; "/" → {}
  std::map<std::string, std::string> query;
};
std::optional<Target> parse_target(std::string_view target);

// "%41+b" → "A b" (plus as space: form encoding of the query); nullopt when a
// % is not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

}  // namespace tern::admin
