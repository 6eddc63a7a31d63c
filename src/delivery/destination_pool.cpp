#include "delivery/destination_pool.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/address.hpp>

#include "dns/mx_route.h"
#include "util/text.h"

namespace tern::delivery {

namespace {
// How long a connection waits for the next message to the same destination.
constexpr auto kKeepIdle = std::chrono::seconds(5);
// Skipped hops named in a reply; the rest are counted.
constexpr std::size_t kMaxNotes = 5;

smtp::Reply made_up(int code, std::string_view enhanced, std::string text) {
  return smtp::Reply(code, enhanced, text);
}

bool past(const std::optional<TimePoint>& deadline) {
  return deadline && std::chrono::steady_clock::now() >= *deadline;
}

// The failure of the last hop tried, with the hops that were skipped (SPEC
// §4: the reason is in `tern queue show` and the tracking log): appended to
// a reply tern made up, or set apart in parentheses after a next hop's own.
Outcome with_notes(Outcome outcome, const std::string& notes) {
  if (notes.empty() || outcome.delivered()) return outcome;
  auto& lines = outcome.reply.lines;
  if (lines.empty()) lines.emplace_back();
  lines.front() += outcome.remote ? " (also: " + notes + ")" : "; " + notes;
  return outcome;
}
}  // namespace

void DestinationPool::Plan::note(std::string text) {
  if (notes.size() < kMaxNotes)
    notes.push_back(std::move(text));
  else
    ++more_notes;
}

std::string DestinationPool::Plan::notes_text() const {
  std::string out;
  for (const auto& n : notes) out += (out.empty() ? "" : "; ") + n;
  if (more_notes > 0) out += "; and " + std::to_string(more_notes) + " more skipped";
  return out;
}

// A connection is kept for the next message only after it delivered something:
// a peer that just deferred everything gets a fresh session next time.
bool worth_keeping(const SmtpClient& client, const std::vector<RecipientOutcome>& outcomes) {
  if (!client.reusable()) return false;
  for (const auto& o : outcomes)
    if (o.outcome.delivered()) return true;
  return false;
}

bool host_failure(const std::vector<RecipientOutcome>& outcomes) {
  if (outcomes.empty()) return false;
  for (const auto& o : outcomes)
    if (!o.outcome.temporary() ||
        (o.outcome.scope != Scope::kHost && o.outcome.scope != Scope::kConnection))
      return false;
  return true;
}

std::vector<RecipientOutcome> all_recipients(const std::vector<std::size_t>& recipients,
                                             const Outcome& outcome) {
  std::vector<RecipientOutcome> out;
  for (auto i : recipients) out.push_back({i, outcome});
  return out;
}

DestinationPool::DestinationPool(asio::any_io_executor executor, const config::Config& config,
                                 dns::Resolver& resolver, std::shared_ptr<asio::ssl::context> tls)
    : executor_(std::move(executor)),
      config_(config),
      resolver_(resolver),
      tls_(std::move(tls)),
      policy_(config.delivery.private_networks) {}

DestinationPool::~DestinationPool() = default;

ClientOptions DestinationPool::options(const std::string& peer_name, bool lmtp,
                                       std::optional<TimePoint> deadline) const {
  ClientOptions o;
  o.deadline = deadline;
  o.may_commit = gate_;
  o.helo_name = config_.delivery.helo_name.empty() ? config_.hostname : config_.delivery.helo_name;
  o.peer_name = peer_name;
  o.lmtp = lmtp;
  o.tls = lmtp || !config_.delivery.starttls ? nullptr : tls_;
  const auto& d = config_.delivery;
  o.timeouts.connect = Millis(d.connect_timeout_ms);
  o.timeouts.greeting = o.timeouts.command = Millis(d.command_timeout_ms);
  o.timeouts.data_init = Millis(std::min<std::uint64_t>(d.command_timeout_ms, 120'000));
  o.timeouts.data_block = Millis(std::min<std::uint64_t>(d.command_timeout_ms, 180'000));
  o.timeouts.data_done = Millis(d.data_timeout_ms);
  return o;
}

net::awaitable<void> DestinationPool::wait_in(std::list<asio::steady_timer*>& list) {
  asio::steady_timer wait(executor_, std::chrono::steady_clock::time_point::max());
  list.push_back(&wait);
  co_await wait.async_wait(net::use_tuple);
  list.remove(&wait);  // still there when woken by anything but wake_one
}

// Wakes the first waiter and takes it off the list at once, so that two
// releases in one turn of the loop wake two waiters, not the same one twice.
void DestinationPool::wake_one(std::list<asio::steady_timer*>& list) {
  if (list.empty()) return;
  asio::steady_timer* first = list.front();
  list.pop_front();
  first->cancel();
}

// A transaction slot: at most max_per_destination per destination, and at
// most max_connections remote ones in all (LMTP is local: not counted there).
net::awaitable<void> DestinationPool::acquire(Destination& d) {
  const auto& limits = config_.delivery;
  for (;;) {
    bool destination_full = d.active >= limits.max_per_destination;
    bool all_full = d.remote && remote_active_ >= limits.max_connections;
    if (!destination_full && !all_full) break;
    if (destination_full) {
      co_await wait_in(d.waiting);
    } else {
      co_await wait_in(remote_waiting_);
      // Woken for a free remote slot this destination cannot use: pass it on.
      if (d.active >= limits.max_per_destination && remote_active_ < limits.max_connections &&
          !remote_waiting_.empty())
        wake_one(remote_waiting_);
    }
  }
  ++d.active;
  if (d.remote) ++remote_active_;
}

void DestinationPool::release(Destination& d) {
  --d.active;
  wake_one(d.waiting);
  if (d.remote) {
    --remote_active_;
    wake_one(remote_waiting_);
  }
}

void DestinationPool::keep(const std::string& key, std::unique_ptr<SmtpClient> client) {
  auto& d = destinations_[key];
  d.idle.push_back({std::move(client), std::chrono::steady_clock::now()});
  if (!d.sweeping) {
    d.sweeping = true;
    asio::co_spawn(executor_, sweep(key), asio::detached);
  }
}

// One sweeper per destination while it has kept connections: closes those
// idle for longer than kKeepIdle.
net::awaitable<void> DestinationPool::sweep(std::string key) {
  auto& d = destinations_[key];
  asio::steady_timer timer(executor_);
  while (!d.idle.empty()) {
    timer.expires_at(d.idle.front().since + kKeepIdle);
    co_await timer.async_wait(net::use_tuple);
    auto now = std::chrono::steady_clock::now();
    while (!d.idle.empty() && now - d.idle.front().since >= kKeepIdle) {
      auto client = std::move(d.idle.front().client);
      d.idle.pop_front();
      co_await client->quit();
    }
  }
  d.sweeping = false;
}

net::awaitable<void> DestinationPool::close_idle() {
  for (auto& [key, d] : destinations_) {
    while (!d.idle.empty()) {
      auto client = std::move(d.idle.front().client);
      d.idle.pop_front();
      co_await client->quit();
    }
  }
}

net::awaitable<std::optional<std::vector<RecipientOutcome>>> DestinationPool::try_idle(
    Destination& d, Transaction t) {
  while (!d.idle.empty() && !past(t.deadline)) {    // (the time is up: kept ones stay kept)
    auto client = std::move(d.idle.back().client);  // the most recently used
    d.idle.pop_back();
    client->set_deadline(t.deadline);
    auto out = co_await client->send(*t.envelope, *t.recipients, t.content);
    if (host_failure(out)) continue;  // the kept connection went stale: open a fresh one
    if (worth_keeping(*client, out)) {
      client->set_deadline(std::nullopt);
      d.idle.push_back({std::move(client), std::chrono::steady_clock::now()});  // the sweeper runs
    } else {
      co_await client->quit();
    }
    co_return out;
  }
  co_return std::nullopt;
}

net::awaitable<std::vector<RecipientOutcome>> DestinationPool::deliver(const std::string& key,
                                                                       bool lmtp, Plan plan,
                                                                       Transaction t) {
  if (plan.failure) co_return all_recipients(*t.recipients, *plan.failure);
  Outcome last = Outcome::temporary_failure(Scope::kHost,
                                            made_up(451, "4.4.0", "No next hop could be reached"));
  for (std::size_t i = 0; i < plan.hops.size(); ++i) {
    const auto& hop = plan.hops[i];
    if (past(t.deadline)) {
      plan.notes.insert(plan.notes.begin(),
                        std::to_string(plan.hops.size() - i) +
                            " more next hop(s) not tried: " + std::string(kBudgetSpent));
      break;
    }
    auto opened =
        co_await SmtpClient::open(executor_, hop.endpoint, options(hop.name, lmtp, t.deadline));
    if (!opened.client) {
      last = opened.failure;
      continue;
    }
    auto out = co_await opened.client->send(*t.envelope, *t.recipients, t.content);
    if (host_failure(out)) {
      last = out.front().outcome;
      co_await opened.client->quit();
      continue;
    }
    if (worth_keeping(*opened.client, out)) {
      opened.client->set_deadline(std::nullopt);
      keep(key, std::move(opened.client));
    } else {
      co_await opened.client->quit();
    }
    co_return out;
  }
  co_return all_recipients(*t.recipients, with_notes(std::move(last), plan.notes_text()));
}

net::awaitable<DestinationPool::Plan> DestinationPool::plan_endpoint(
    const std::string& name, const config::Endpoint& endpoint, std::uint16_t default_port) {
  Plan plan;
  std::uint16_t port = endpoint.port ? endpoint.port : default_port;
  std::error_code ec;
  auto address = asio::ip::make_address(endpoint.host, ec);
  if (!ec) {
    plan.hops.push_back({name, {address, port}});
    co_return plan;
  }
  auto found = co_await resolver_.addresses(endpoint.host);
  if (!found.ok()) {
    int code = dns::is_temporary(found.error) ? 451 : 550;
    plan.failure =
        code == 451
            ? Outcome::temporary_failure(
                  Scope::kHost,
                  made_up(451, "4.4.3", "Next hop " + endpoint.host + ": " + found.message))
            : Outcome::permanent_failure(
                  Scope::kMessage,
                  made_up(550, "5.4.4", "Next hop " + endpoint.host + ": " + found.message));
    co_return plan;
  }
  // A configured next hop: every address may be used (no NextHopPolicy).
  for (const auto& a : found.records) {
    auto parsed = asio::ip::make_address(a.address, ec);
    if (ec) continue;
    if (plan.hops.size() == kMaxHopAddresses) {
      plan.note(endpoint.host + ": " + a.address + " not tried (at most " +
                std::to_string(kMaxHopAddresses) + " addresses per attempt)");
      continue;
    }
    plan.hops.push_back({name, {parsed, port}});
  }
  co_return plan;
}

// An address literal (RFC 5321 §4.1.3, §5.1: no DNS). The literal stays in
// the envelope whatever tern does, so a refused one fails at once.
DestinationPool::Plan DestinationPool::plan_literal(const std::string& domain) const {
  Plan plan;
  auto ip = address_literal_ip(domain);
  if (!ip) {
    plan.failure = Outcome::permanent_failure(
        Scope::kMessage, made_up(550, "5.1.2",
                                 "Address literal " + util::printable(domain, 80) +
                                     " is neither an IPv4 nor an IPv6 address"));
    return plan;
  }
  if (auto why = policy_.refusal(*ip)) {
    plan.failure = Outcome::permanent_failure(
        Scope::kMessage, made_up(550, "5.4.4", "Mail for " + domain + " not sent: " + *why));
    return plan;
  }
  std::error_code ec;
  auto address = asio::ip::make_address(*ip, ec);
  if (!ec) plan.hops.push_back({domain, {address, config_.delivery.port}});
  return plan;
}

net::awaitable<DestinationPool::Plan> DestinationPool::plan_mx(const std::string& domain) {
  auto route = co_await dns::find_mx_route(resolver_, domain);
  Plan plan;
  if (route.kind == dns::RouteKind::kNoAddress) {
    // MX records that point nowhere are a DNS mistake that may be mended:
    // defer with the reason, and give up only when the message expires.
    std::string why = route.failure.lines.front();
    for (const auto& h : route.hosts)
      if (!h.note.empty())
        why += "; " + (h.name.empty() ? std::string(".") : h.name) + ": " + h.note;
    plan.failure = Outcome::temporary_failure(Scope::kHost, made_up(451, "4.4.4", why));
    co_return plan;
  }
  if (!route.deliverable()) {
    plan.failure = route.temporary_failure()
                       ? Outcome::temporary_failure(Scope::kHost, route.failure)
                       : Outcome::permanent_failure(Scope::kMessage, route.failure);
    co_return plan;
  }
  std::size_t hosts = 0;
  for (const auto& host : route.hosts) {
    if (!host.usable()) continue;
    if (hosts == kMaxHopHosts || plan.hops.size() == kMaxHopAddresses) {
      plan.note(host.name + " not tried (at most " + std::to_string(kMaxHopHosts) +
                " MX hosts and " + std::to_string(kMaxHopAddresses) + " addresses per attempt)");
      continue;
    }
    bool used = false;
    for (const auto& a : host.addresses) {
      if (auto why = policy_.refusal(a.address)) {
        plan.note(host.name + ": " + *why);
        continue;
      }
      std::error_code ec;
      auto address = asio::ip::make_address(a.address, ec);
      if (ec) continue;
      if (plan.hops.size() == kMaxHopAddresses) {
        plan.note(host.name + ": " + a.address + " not tried (at most " +
                  std::to_string(kMaxHopAddresses) + " addresses per attempt)");
        continue;
      }
      plan.hops.push_back({host.name, {address, config_.delivery.port}});
      used = true;
    }
    if (used) ++hosts;
  }
  if (plan.hops.empty()) {
    // Postfix's choice too: DNS may be mended (or private_networks widened)
    // before the message expires, so this is a deferral, not a bounce.
    plan.failure = Outcome::temporary_failure(
        Scope::kHost,
        made_up(451, "4.4.4", "No address of " + domain + " may be used: " + plan.notes_text()));
  }
  co_return plan;
}

net::awaitable<DestinationPool::Plan> DestinationPool::plan_remote(const std::string& domain) {
  if (const auto* route = config_.find_route(domain))
    co_return co_await plan_endpoint(route->next_hop.host, route->next_hop, 25);
  if (!domain.empty() && domain.front() == '[') co_return plan_literal(domain);
  co_return co_await plan_mx(domain);
}

net::awaitable<std::vector<RecipientOutcome>> DestinationPool::deliver_remote(
    const std::string& domain, Transaction t) {
  auto& d = destinations_[domain];
  d.remote = true;
  co_await acquire(d);
  // The slot is given back whatever happens, or a throwing delivery would
  // leak it and in the end stop every delivery to the destination.
  std::optional<std::vector<RecipientOutcome>> out;
  std::exception_ptr error;
  try {
    out = co_await try_idle(d, t);
    if (!out) {
      auto plan = co_await plan_remote(domain);
      out = co_await deliver(domain, false, std::move(plan), t);
    }
  } catch (...) {
    error = std::current_exception();
  }
  release(d);
  if (error) std::rethrow_exception(error);
  co_return std::move(*out);
}

net::awaitable<std::vector<RecipientOutcome>> DestinationPool::deliver_lmtp(
    const config::Endpoint& endpoint, Transaction t) {
  std::string key = "lmtp:" + endpoint.str();
  auto& d = destinations_[key];
  co_await acquire(d);
  std::optional<std::vector<RecipientOutcome>> out;
  std::exception_ptr error;
  try {
    out = co_await try_idle(d, t);
    if (!out) {
      auto plan = co_await plan_endpoint(endpoint.str(), endpoint, 24);
      out = co_await deliver(key, true, std::move(plan), t);
    }
  } catch (...) {
    error = std::current_exception();
  }
  release(d);
  if (error) std::rethrow_exception(error);
  co_return std::move(*out);
}

}  // namespace tern::delivery
