// See metrics.h. Text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): "# HELP name
// text", "# TYPE name type", then one sample a line: name{label="value",…} value.
#include "log/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <type_traits>

namespace tern::log {

namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[400];  // the largest double in fixed notation fits
  // The shortest form that reads back as v, without an exponent ("0.0005").
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

void family(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

// labels: `k="v",k2="v2"` already escaped, or empty.
template <typename V>
void sample(std::string& out, std::string_view name, const std::string& labels, V value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ");
  if constexpr (std::is_floating_point_v<V>)
    out.append(number(value));
  else
    out.append(std::to_string(value));
  out.append("\n");
}

std::string label(std::string_view key, std::string_view value) {
  std::string out(key);
  out.append("=\"").append(escape_label_value(value)).append("\"");
  return out;
}

void histogram(std::string& out, std::string_view name, const std::string& labels,
               const Histogram& h) {
  auto s = h.snapshot();
  std::string bucket = std::string(name) + "_bucket";
  std::string prefix = labels.empty() ? "" : labels + ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i) {
    cumulative += s.buckets[i];
    sample(out, bucket, prefix + label("le", number(Histogram::kBounds[i])), cumulative);
  }
  sample(out, bucket, prefix + label("le", "+Inf"), s.count);
  sample(out, std::string(name) + "_sum", labels, s.sum_seconds);
  sample(out, std::string(name) + "_count", labels, s.count);
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string_view via_name(Via via) {
  switch (via) {
    case Via::kMaildir:
      return "maildir";
    case Via::kLmtp:
      return "lmtp";
    case Via::kSmtp:
      return "smtp";
  }
  return "unknown";
}

void Histogram::observe(std::chrono::nanoseconds d) {
  auto ns = d.count() < 0 ? 0 : static_cast<std::uint64_t>(d.count());
  double seconds = static_cast<double>(ns) / 1e9;
  std::size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;  // le: bound inclusive
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    s.count += s.buckets[i];
  }
  s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

Registry::Registry()
    : started_(std::chrono::system_clock::now()),
      started_steady_(std::chrono::steady_clock::now()) {}

void Registry::set_listeners(const std::vector<std::string>& names) {
  std::lock_guard lock(names_mu_);
  names_.assign(names.begin(),
                names.begin() + static_cast<std::ptrdiff_t>(std::min(names.size(), kMaxListeners)));
}

void Registry::set_queue_source(QueueSource source) {
  std::lock_guard lock(source_mu_);
  queue_source_ = std::move(source);
}

std::string Registry::render() {
  std::vector<std::string> names;
  {
    std::lock_guard lock(names_mu_);
    names = names_;
  }
  std::vector<std::string> listener_labels;
  for (const auto& n : names) listener_labels.push_back(label("listener", n));
  auto per_listener = [&](std::string& out, std::string_view name, auto value) {
    for (std::size_t i = 0; i < names.size(); ++i) sample(out, name, listener_labels[i], value(i));
  };
  std::string out;
  out.reserve(8192);

  family(out, "tern_messages_received_total", "Messages accepted and queued, by listener.",
         "counter");
  per_listener(out, "tern_messages_received_total",
               [&](std::size_t i) { return listeners_[i].received.value(); });

  family(out, "tern_messages_delivered_total",
         "Recipients delivered (maildir, lmtp) or relayed to the next hop (smtp).", "counter");
  for (std::size_t v = 0; v < kVias; ++v)
    sample(out, "tern_messages_delivered_total", label("via", via_name(static_cast<Via>(v))),
           delivered_[v].value());
  family(out, "tern_messages_deferred_total", "Recipients deferred (a temporary failure).",
         "counter");
  sample(out, "tern_messages_deferred_total", "", deferred.value());
  family(out, "tern_messages_failed_total",
         "Recipients that failed for good (a permanent failure or expiry).", "counter");
  sample(out, "tern_messages_failed_total", "", failed.value());
  family(out, "tern_dsn_generated_total", "Delivery status notifications generated.", "counter");
  sample(out, "tern_dsn_generated_total", "", dsns.value());

  std::optional<QueueCounts> queue;
  {
    std::lock_guard lock(source_mu_);
    if (queue_source_) {
      try {
        queue = queue_source_();
      } catch (const std::exception&) {  // unknown now: left out
      }
    }
  }
  family(out, "tern_queue_messages", "Messages in the queue, by state.", "gauge");
  if (queue) {
    sample(out, "tern_queue_messages", label("state", "queued"), queue->queued);
    sample(out, "tern_queue_messages", label("state", "active"), queue->active);
    sample(out, "tern_queue_messages", label("state", "deferred"), queue->deferred);
    sample(out, "tern_queue_messages", label("state", "held"), queue->held);
    sample(out, "tern_queue_messages", label("state", "quarantined"), queue->quarantined);
  }

  family(out, "tern_smtp_connections", "Open SMTP connections, by listener.", "gauge");
  per_listener(out, "tern_smtp_connections",
               [&](std::size_t i) { return listeners_[i].connections.value(); });
  // Not tern_smtp_connections_total: a counter of that name would be the same
  // family as the gauge above for OpenMetrics parsers (a counter's family name
  // drops _total).
  family(out, "tern_smtp_connections_accepted_total", "SMTP connections admitted, by listener.",
         "counter");
  per_listener(out, "tern_smtp_connections_accepted_total",
               [&](std::size_t i) { return listeners_[i].connections_total.value(); });
  family(out, "tern_smtp_connections_refused_total",
         "SMTP connections refused with 421 (connection limits, shutdown), by listener.",
         "counter");
  per_listener(out, "tern_smtp_connections_refused_total",
               [&](std::size_t i) { return listeners_[i].refused.value(); });
  family(out, "tern_smtp_replies_total", "SMTP replies sent, by listener and reply class.",
         "counter");
  for (std::size_t i = 0; i < names.size(); ++i)
    for (std::size_t c = 0; c < 4; ++c)
      sample(out, "tern_smtp_replies_total",
             listener_labels[i] + "," + label("class", std::to_string(c + 2)),
             listeners_[i].replies[c].value());
  family(out, "tern_smtp_auth_failures_total", "AUTH attempts with wrong credentials, by listener.",
         "counter");
  per_listener(out, "tern_smtp_auth_failures_total",
               [&](std::size_t i) { return listeners_[i].auth_failures.value(); });

  family(out, "tern_delivery_duration_seconds",
         "One delivery attempt: a Maildir recipient, an LMTP group or a remote domain.",
         "histogram");
  for (std::size_t v = 0; v < kVias; ++v)
    histogram(out, "tern_delivery_duration_seconds", label("via", via_name(static_cast<Via>(v))),
              duration_[v]);
  family(out, "tern_spool_commit_seconds",
         "One group commit of the spool (a synced batch or a transaction).", "histogram");
  histogram(out, "tern_spool_commit_seconds", "", spool_commit);

  family(out, "tern_start_time_seconds", "When tern started, Unix time in seconds.", "gauge");
  sample(out, "tern_start_time_seconds", "",
         std::chrono::duration<double>(started_.time_since_epoch()).count());
  family(out, "tern_uptime_seconds", "Seconds since tern started.", "gauge");
  sample(out, "tern_uptime_seconds", "",
         std::chrono::duration<double>(std::chrono::steady_clock::now() - started_steady_).count());
  return out;
}

Registry& metrics() {
  static Registry registry;
  return registry;
}

std::string render_metrics() {
  return metrics().render();
}

}  // namespace tern::log
