// The admin listener's routes (SPEC §5). Paths are matched segment by
// segment after parse_target() has refused empty, "." and ".." segments in
// any encoding, so no path trick reaches anything but a 400 or a 404; nothing
// here opens a file. Queue actions are the scheduler's, as the control
// socket's are (control_socket.cpp).
#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>

#include "admin/admin_server.h"
#include "admin/token.h"
#include "admin/viewer_assets.h"
#include "log/metrics.h"
#include "queue/queue_json.h"
#include "queue/scheduler.h"
#include "queue/spool.h"
#include "queue/trail.h"
#include "smtp/headers.h"
#include "util/text.h"

namespace tern::admin {

namespace {

// The most of a message's header section GET /api/queue/ID returns.
constexpr std::size_t kMaxHeaderSection = 64 * 1024;

// The page: its own files only, no inline script or style, never in a frame.
constexpr const char* kPagePolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

Response json(int status, const nlohmann::json& body) {
  Response r;
  r.status = status;
  r.body = queue::json_text(body, -1);
  return r;
}

Response error(int status, const std::string& message) {
  return json(status, {{"error", message}});
}

Response not_allowed(const char* allow) {
  auto r = error(405, "method not allowed; use " + std::string(allow));
  r.headers.emplace_back("Allow", allow);
  return r;
}

// A blocking call (spool, trail, metrics) on the blocking pool; the caller
// resumes on its own executor.
// (GCC 12 corrupts the heap when the lambda handed to co_spawn inside a
// co_await captures something with a destructor: it captures a pointer to f,
// which lives in this frame until the call has ended; callers capture
// strings by pointer to their own locals for the same reason.)
template <typename F>
auto off_loop(asio::thread_pool& pool, F f) -> net::awaitable<decltype(f())> {
  F* fn = &f;
  auto result = co_await asio::co_spawn(
      pool, [fn]() -> net::awaitable<decltype(f())> { co_return (*fn)(); }, asio::use_awaitable);
  co_return result;
}

// A scheduler answer ("ok: …" / "error: …") as JSON: 200, 404 for an
// unknown message, 409 while another action holds it, 503 otherwise.
Response action_result(const std::string& answer) {
  if (answer.rfind("ok: ", 0) == 0) return json(200, {{"result", answer.substr(4)}});
  std::string text = answer.rfind("error: ", 0) == 0 ? answer.substr(7) : answer;
  int status = 503;
  if (text.rfind("no message with InternalId", 0) == 0) status = 404;
  if (text.find("is being changed by another queue command") != std::string::npos) status = 409;
  return json(status, {{"error", text}, {"result", text}});
}

}  // namespace

net::awaitable<Response> AdminServer::respond(const Request& request) {
  try {
    co_return co_await route(request);
  } catch (const queue::SpoolUnavailable& e) {
    co_return error(503, std::string("the spool cannot be read now: ") + e.what());
  } catch (const std::exception& e) {
    spdlog::error("admin request {} failed: {}", util::printable(request.target), e.what());
    co_return error(500, "internal error");
  }
}

net::awaitable<Response> AdminServer::route(const Request& request) {
  auto target = parse_target(request.target);
  if (!target) co_return error(400, "bad request target");
  const auto& path = target->segments;
  const std::string& method = request.method;
  const bool read = method == "GET" || method == "HEAD";
  if (!path.empty() && path[0] == "api") {
    if (!bearer_matches(request.header("authorization") ? *request.header("authorization") : "",
                        token_)) {
      auto r = error(401, "this call needs Authorization: Bearer <token> (the [admin] token_file)");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tern\"");
      co_return r;
    }
    co_return co_await api(request, path, *target);
  }
  if (path.empty() || (path.size() == 1 && find_asset(path[0]))) {
    if (!read) co_return not_allowed("GET, HEAD");
    const Asset* asset = find_asset(path.empty() ? "index.html" : path[0]);
    if (!asset) co_return error(404, "not found");
    Response r;
    r.content_type = std::string(asset->content_type);
    r.body = std::string(asset->body);
    r.headers.emplace_back("Content-Security-Policy", kPagePolicy);
    r.headers.emplace_back("X-Frame-Options", "DENY");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    if (method == "HEAD") r.body.clear();
    co_return r;
  }
  if (path.size() == 1 && path[0] == "metrics") {
    if (!read) co_return not_allowed("GET, HEAD");
    auto r = co_await metrics();
    if (method == "HEAD") r.body.clear();
    co_return r;
  }
  co_return error(404, "not found");
}

net::awaitable<Response> AdminServer::metrics() {
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = co_await off_loop(blocking_, [] { return log::render_metrics(); });
  co_return r;
}

net::awaitable<Response> AdminServer::api(const Request& request,
                                          const std::vector<std::string>& path,
                                          const Target& target) {
  const std::string& method = request.method;
  if (path.size() == 2 && path[1] == "trail") {
    if (method != "GET") co_return not_allowed("GET");
    co_return co_await trail(target);
  }
  if (path.size() < 2 || path[1] != "queue" || path.size() > 4) co_return error(404, "not found");
  if (path.size() == 2) {
    if (method != "GET") co_return not_allowed("GET");
    auto& spool = spool_;
    // Read and serialised off the loop: a large queue never stalls delivery.
    auto body = co_await off_loop(
        blocking_, [&spool] { return queue::json_text(queue::queue_json(spool.list())); });
    Response r;
    r.body = std::move(body);
    co_return r;
  }
  auto id = util::parse_uint(path[2]);
  if (!id || path[2].find_first_not_of("0123456789") != std::string::npos)
    co_return error(404, "no message with InternalId " + path[2] + " in the queue");
  if (path.size() == 4) {
    if (path[3] != "retry" && path[3] != "bounce") co_return error(404, "not found");
    if (method != "POST") co_return not_allowed("POST");
    co_return co_await message(*id, path[3]);
  }
  if (method != "GET" && method != "DELETE") co_return not_allowed("GET, DELETE");
  std::string action = method == "DELETE" ? "delete" : "show";
  co_return co_await message(*id, action);
}

net::awaitable<Response> AdminServer::message(std::uint64_t id, const std::string& action) {
  if (action == "retry") {
    std::string answer = co_await scheduler_.retry(id);
    co_return action_result(answer);
  }
  if (action == "bounce") {
    std::string answer = co_await scheduler_.bounce(id);
    co_return action_result(answer);
  }
  if (action == "delete") {
    std::string answer = co_await scheduler_.remove(id);
    co_return action_result(answer);
  }
  // show: the envelope, the recipients and the header section, bounded
  auto& spool = spool_;
  auto details = co_await off_loop(blocking_, [&spool, id]() -> std::optional<nlohmann::json> {
    std::optional<queue::Envelope> e;
    try {
      e = spool.find(id);
    } catch (const queue::SpoolUnavailable&) {
      throw;
    } catch (const std::exception& ex) {  // quarantined: shown with the reason
      e = queue::unreadable_envelope(id, ex.what());
    }
    if (!e) return std::nullopt;
    auto j = queue::envelope_json(*e);
    std::string content = spool.content(id).value_or("");
    std::size_t end = smtp::scan_headers(content).header_end;
    std::string headers = content.substr(0, std::min(end, kMaxHeaderSection));
    j["subject"] = smtp::header_value(headers, "Subject").value_or("");
    j["headers"] = std::move(headers);
    j["headers_truncated"] = end > kMaxHeaderSection;
    return j;
  });
  if (!details)
    co_return error(404, "no message with InternalId " + std::to_string(id) + " in the queue");
  co_return json(200, *details);
}

net::awaitable<Response> AdminServer::trail(const Target& target) {
  queue::TrailQuery query;
  int given = 0;
  for (const auto& [key, kind] : {std::pair{"id", queue::TrailQuery::Kind::kId},
                                  std::pair{"message_id", queue::TrailQuery::Kind::kMessageId},
                                  std::pair{"address", queue::TrailQuery::Kind::kAddress}}) {
    auto it = target.query.find(key);
    if (it == target.query.end()) continue;
    ++given;
    query.kind = kind;
    query.value = it->second;
  }
  if (given != 1 || query.value.empty())
    co_return error(400, "give one of id=, message_id= or address=");
  if (query.kind == queue::TrailQuery::Kind::kId && !util::parse_uint(query.value))
    co_return error(400, "id= takes an InternalId");
  queue::Trail* trail = spool_.trail();
  if (!trail) co_return error(503, "the message trail is not available");
  const queue::TrailQuery* wanted = &query;
  auto events = co_await off_loop(blocking_, [trail, wanted] { return trail->find(*wanted); });
  Response r;
  r.body = queue::trail_json(events);
  co_return r;
}

}  // namespace tern::admin
