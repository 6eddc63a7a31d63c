// See http.h. http-parser calls back as it goes; the callbacks collect the
// request and pause the parser at its end, so that pipelined requests are
// answered one at a time, in order.
#include "admin/http.h"

#include <algorithm>

#include "util/text.h"

namespace tern::admin {

namespace {

RequestParser* self(http_parser* p) {
  return static_cast<RequestParser*>(p->data);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

const std::string* Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string serialize(const Response& r, bool keep_alive) {
  std::string out =
      "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason_phrase(r.status)) + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += keep_alive && !r.close ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "\r\n";
  out += r.body;
  return out;
}

RequestParser::RequestParser(std::size_t max_head, std::size_t max_body)
    : max_head_(max_head), max_body_(max_body) {
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = on_message_begin;
  settings_.on_url = on_url;
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_body = on_body;
  settings_.on_message_complete = on_message_complete;
  reset();
}

void RequestParser::reset() {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  request_ = Request{};
  head_bytes_ = 0;
  in_value_ = false;
  headers_done_ = false;
  complete_ = false;
  started_ = false;
  body_too_large_ = false;
}

std::pair<RequestParser::Status, std::size_t> RequestParser::feed(std::string_view data) {
  std::size_t used = 0;
  while (used < data.size() && !complete_) {
    std::string_view piece = data.substr(used);
    // The head is fed no further than its bound: what a client sends past it
    // is never parsed, never buffered.
    if (!headers_done_) {
      if (head_bytes_ >= max_head_) return {Status::kHeadTooLarge, used};
      piece = piece.substr(0, max_head_ - head_bytes_);
    }
    started_ = true;
    std::size_t n = http_parser_execute(&parser_, &settings_, piece.data(), piece.size());
    if (!headers_done_) head_bytes_ += n;
    used += n;
    auto error = HTTP_PARSER_ERRNO(&parser_);
    if (body_too_large_) return {Status::kBodyTooLarge, used};
    if (error == HPE_PAUSED) break;  // complete_
    if (error != HPE_OK) return {Status::kBad, used};
    if (parser_.upgrade && !complete_) return {Status::kBad, used};
    if (n < piece.size() && !complete_) return {Status::kBad, used};
  }
  if (complete_) return {Status::kComplete, used};
  if (!headers_done_ && head_bytes_ >= max_head_) return {Status::kHeadTooLarge, used};
  return {Status::kIncomplete, used};
}

Request RequestParser::take() {
  Request r = std::move(request_);
  reset();
  return r;
}

int RequestParser::on_message_begin(http_parser* p) {
  self(p)->started_ = true;
  return 0;
}

int RequestParser::on_url(http_parser* p, const char* at, std::size_t n) {
  self(p)->request_.target.append(at, n);
  return 0;
}

int RequestParser::on_header_field(http_parser* p, const char* at, std::size_t n) {
  auto* s = self(p);
  // Trailer fields of a chunked body come after the head's bound was checked
  // and could add an Authorization: refused (400).
  if (s->headers_done_) return -1;
  if (s->in_value_ || s->request_.headers.empty()) s->request_.headers.emplace_back();
  s->in_value_ = false;
  s->request_.headers.back().first += util::to_lower(std::string_view(at, n));
  return 0;
}

int RequestParser::on_header_value(http_parser* p, const char* at, std::size_t n) {
  auto* s = self(p);
  if (s->headers_done_ || s->request_.headers.empty()) return -1;
  s->in_value_ = true;
  s->request_.headers.back().second.append(at, n);
  return 0;
}

int RequestParser::on_headers_complete(http_parser* p) {
  auto* s = self(p);
  s->headers_done_ = true;
  s->request_.method = http_method_str(static_cast<http_method>(p->method));
  s->request_.keep_alive = http_should_keep_alive(p) != 0;
  if (p->http_major != 1 || p->http_minor > 1) return -1;  // HTTP/1.0 and 1.1 only: 400
  // A declared length over the bound is refused before any of the body comes.
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > s->max_body_) {
    s->body_too_large_ = true;
    return -1;
  }
  return 0;
}

int RequestParser::on_body(http_parser* p, const char* at, std::size_t n) {
  auto* s = self(p);
  if (s->request_.body.size() + n > s->max_body_) {
    s->body_too_large_ = true;
    return -1;
  }
  s->request_.body.append(at, n);
  return 0;
}

int RequestParser::on_message_complete(http_parser* p) {
  auto* s = self(p);
  s->complete_ = true;
  if (p->upgrade) s->request_.keep_alive = false;  // no protocol switch here: close after
  http_parser_pause(p, 1);
  return 0;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      int hi = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
      int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<Target> parse_target(std::string_view target) {
  if (target.empty() || target.front() != '/') return std::nullopt;  // origin-form only
  std::string_view path = target, query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  if (auto f = query.find('#'); f != std::string_view::npos) query = query.substr(0, f);
  Target t;
  if (path != "/") {
    // Split before decoding, so "%2f" is part of a segment, never a separator.
    for (std::string_view rest = path.substr(1);;) {
      auto slash = rest.find('/');
      auto raw = rest.substr(0, slash);
      auto segment = percent_decode(raw, false);
      if (!segment || segment->empty() || *segment == "." || *segment == ".." ||
          segment->find('\0') != std::string::npos || segment->find('/') != std::string::npos)
        return std::nullopt;
      t.segments.push_back(std::move(*segment));
      if (slash == std::string_view::npos) break;
      rest = rest.substr(slash + 1);
    }
  }
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    // A NUL reaches no lookup (an address, a Message-ID): 400, as in a path.
    if (!key || !value || key->find('\0') != std::string::npos ||
        value->find('\0') != std::string::npos)
      return std::nullopt;
    if (!key->empty()) t.query.emplace(std::move(*key), std::move(*value));
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return t;
}

}  // namespace tern::admin
