// The metrics registry (log/metrics.h): counters and histograms add up, and
// render() writes the Prometheus text exposition format 0.0.4 exactly: HELP
// and TYPE lines, escaped label values, cumulative buckets ending in +Inf,
// _sum and _count, and only the bounded label sets.
#include "log/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace tern::log {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped
  std::string value;
};

// A strict reader of the text format: fails the test on any line that is not
// a HELP, a TYPE or a sample with well-formed, escaped labels.
struct Parsed {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;
};

Parsed parse(const std::string& text) {
  Parsed out;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::istringstream in(text);
  std::string line;
  const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$)");
  const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)");
  const std::regex name(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) continue;
    if (std::regex_match(line, m, type)) {
      EXPECT_EQ(out.types.count(m[1]), 0u) << "TYPE twice: " << line;
      out.types[m[1]] = m[2];
      continue;
    }
    if (!std::regex_search(line, m, name)) {
      ADD_FAILURE() << "not a sample: " << line;
      continue;
    }
    Sample s;
    s.name = m[0];
    std::size_t i = s.name.size();
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        auto eq = line.find("=\"", i);
        if (eq == std::string::npos) {
          ADD_FAILURE() << "bad labels: " << line;
          break;
        }
        std::string key = line.substr(i, eq - i);
        i = eq + 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            char e = line[i + 1];
            EXPECT_TRUE(e == '\\' || e == '"' || e == 'n') << "bad escape in " << line;
            value += e == 'n' ? '\n' : e;
            i += 2;
          } else {
            value += line[i++];
          }
        }
        ++i;  // the closing quote
        s.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // }
    }
    EXPECT_TRUE(i < line.size() && line[i] == ' ') << "no value: " << line;
    s.value = line.substr(i + 1);
    EXPECT_TRUE(std::regex_match(s.value, std::regex(R"(^[+-]?(Inf|NaN|[0-9.eE+-]+)$)")))
        << "bad value: " << line;
    out.samples.push_back(std::move(s));
  }
  return out;
}

const Sample* find(const Parsed& p, const std::string& name,
                   const std::map<std::string, std::string>& labels = {}) {
  for (const auto& s : p.samples)
    if (s.name == name && s.labels == labels) return &s;
  return nullptr;
}

std::string value_of(const Parsed& p, const std::string& name,
                     const std::map<std::string, std::string>& labels = {}) {
  const Sample* s = find(p, name, labels);
  if (!s) {
    ADD_FAILURE() << "no sample " << name;
    return "";
  }
  return s->value;
}

TEST(Metrics, EscapesLabelValues) {
  EXPECT_EQ(escape_label_value("plain"), "plain");
  EXPECT_EQ(escape_label_value(R"(a\b)"), R"(a\\b)");
  EXPECT_EQ(escape_label_value("say \"hi\""), R"(say \"hi\")");
  EXPECT_EQ(escape_label_value("two\nlines"), R"(two\nlines)");
}

TEST(Metrics, HistogramBucketsAreInclusiveAndAddUp) {
  Histogram h;
  using std::chrono::microseconds;
  using std::chrono::milliseconds;
  h.observe(milliseconds(1));        // exactly on the 0.001 bound: in it (le)
  h.observe(microseconds(1001));     // just above: in 0.0025
  h.observe(milliseconds(200));      // 0.25
  h.observe(std::chrono::hours(1));  // above every bound: +Inf only
  auto s = h.snapshot();
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.buckets[1], 1u);  // le 0.001
  EXPECT_EQ(s.buckets[2], 1u);  // le 0.0025
  EXPECT_EQ(s.buckets[8], 1u);  // le 0.25
  EXPECT_EQ(s.buckets.back(), 1u);
  EXPECT_NEAR(s.sum_seconds, 0.001 + 0.001001 + 0.2 + 3600, 1e-9);
}

TEST(Metrics, RendersTheTextFormat) {
  auto r = std::make_unique<Registry>();
  r->set_listeners({"default", "sub\"mit\\ting\nx"});
  r->listener(0).received.inc(3);
  r->listener(1).received.inc();
  r->listener(0).connections.add(2);
  r->listener(0).connections.sub();
  r->listener(0).connections_total.inc(2);
  r->listener(1).refused.inc();
  for (int code : {220, 250, 250, 354, 421, 550, 199, 600}) r->listener(0).reply(code);
  r->listener(0).auth_failures.inc();
  r->delivered(Via::kMaildir).inc(5);
  r->delivered(Via::kSmtp).inc(2);
  r->deferred.inc(4);
  r->failed.inc();
  r->dsns.inc(2);
  r->delivery_duration(Via::kSmtp).observe(std::chrono::milliseconds(30));
  r->delivery_duration(Via::kSmtp).observe(std::chrono::seconds(2));
  r->spool_commit.observe(std::chrono::microseconds(800));

  Parsed p = parse(r->render());
  EXPECT_EQ(value_of(p, "tern_messages_received_total", {{"listener", "default"}}), "3");
  EXPECT_EQ(value_of(p, "tern_messages_received_total", {{"listener", "sub\"mit\\ting\nx"}}), "1");
  EXPECT_EQ(value_of(p, "tern_smtp_connections", {{"listener", "default"}}), "1");
  EXPECT_EQ(value_of(p, "tern_smtp_connections_accepted_total", {{"listener", "default"}}), "2");
  EXPECT_EQ(value_of(p, "tern_smtp_connections_refused_total", {{"listener", "sub\"mit\\ting\nx"}}),
            "1");
  EXPECT_EQ(value_of(p, "tern_smtp_replies_total", {{"listener", "default"}, {"class", "2"}}), "3");
  EXPECT_EQ(value_of(p, "tern_smtp_replies_total", {{"listener", "default"}, {"class", "3"}}), "1");
  EXPECT_EQ(value_of(p, "tern_smtp_replies_total", {{"listener", "default"}, {"class", "4"}}), "1");
  EXPECT_EQ(value_of(p, "tern_smtp_replies_total", {{"listener", "default"}, {"class", "5"}}), "1");
  EXPECT_EQ(value_of(p, "tern_smtp_auth_failures_total", {{"listener", "default"}}), "1");
  EXPECT_EQ(value_of(p, "tern_messages_delivered_total", {{"via", "maildir"}}), "5");
  EXPECT_EQ(value_of(p, "tern_messages_delivered_total", {{"via", "lmtp"}}), "0");
  EXPECT_EQ(value_of(p, "tern_messages_delivered_total", {{"via", "smtp"}}), "2");
  EXPECT_EQ(value_of(p, "tern_messages_deferred_total"), "4");
  EXPECT_EQ(value_of(p, "tern_messages_failed_total"), "1");
  EXPECT_EQ(value_of(p, "tern_dsn_generated_total"), "2");

  // Histograms: cumulative buckets, +Inf equal to _count, _sum in seconds.
  EXPECT_EQ(p.types["tern_delivery_duration_seconds"], "histogram");
  EXPECT_EQ(
      value_of(p, "tern_delivery_duration_seconds_bucket", {{"via", "smtp"}, {"le", "0.025"}}),
      "0");
  EXPECT_EQ(value_of(p, "tern_delivery_duration_seconds_bucket", {{"via", "smtp"}, {"le", "0.05"}}),
            "1");
  EXPECT_EQ(value_of(p, "tern_delivery_duration_seconds_bucket", {{"via", "smtp"}, {"le", "1"}}),
            "1");
  EXPECT_EQ(value_of(p, "tern_delivery_duration_seconds_bucket", {{"via", "smtp"}, {"le", "2.5"}}),
            "2");
  EXPECT_EQ(value_of(p, "tern_delivery_duration_seconds_bucket", {{"via", "smtp"}, {"le", "+Inf"}}),
            "2");
  EXPECT_EQ(value_of(p, "tern_delivery_duration_seconds_count", {{"via", "smtp"}}), "2");
  EXPECT_EQ(value_of(p, "tern_delivery_duration_seconds_sum", {{"via", "smtp"}}), "2.03");
  EXPECT_EQ(value_of(p, "tern_delivery_duration_seconds_count", {{"via", "maildir"}}), "0");
  EXPECT_EQ(value_of(p, "tern_spool_commit_seconds_bucket", {{"le", "0.0005"}}), "0");
  EXPECT_EQ(value_of(p, "tern_spool_commit_seconds_bucket", {{"le", "0.001"}}), "1");
  EXPECT_EQ(value_of(p, "tern_spool_commit_seconds_count"), "1");

  // Every bucket series is non-decreasing and ends with +Inf.
  std::map<std::string, std::vector<const Sample*>> buckets;
  for (const auto& s : p.samples)
    if (s.name.ends_with("_bucket")) {
      auto key = s.labels.count("via") ? s.labels.at("via") : "";
      buckets[s.name + key].push_back(&s);
    }
  ASSERT_EQ(buckets.size(), 4u);  // three vias and the spool
  for (const auto& [key, series] : buckets) {
    ASSERT_EQ(series.size(), Histogram::kBounds.size() + 1) << key;
    EXPECT_EQ(series.back()->labels.at("le"), "+Inf");
    for (std::size_t i = 1; i < series.size(); ++i)
      EXPECT_LE(std::stoull(series[i - 1]->value), std::stoull(series[i]->value)) << key;
  }

  // SPEC §5's series, each declared once with its type; every sample
  // belongs to a declared family.
  for (const char* required :
       {"tern_messages_received_total", "tern_messages_delivered_total",
        "tern_messages_deferred_total", "tern_messages_failed_total", "tern_queue_messages",
        "tern_smtp_connections", "tern_delivery_duration_seconds"})
    EXPECT_EQ(p.types.count(required), 1u) << required;
  for (const auto& s : p.samples) {
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (!p.types.count(family) && family.ends_with(suffix))
        family = family.substr(0, family.size() - std::string(suffix).size());
    EXPECT_EQ(p.types.count(family), 1u) << s.name;
  }
  // No counter's family (its name without _total) is another family's name:
  // OpenMetrics parsers would merge them.
  for (const auto& [family, type] : p.types) {
    if (type == "counter" && family.ends_with("_total")) {
      EXPECT_EQ(p.types.count(family.substr(0, family.size() - 6)), 0u) << family;
    }
  }
  EXPECT_EQ(p.types["tern_messages_received_total"], "counter");
  EXPECT_EQ(p.types["tern_smtp_connections"], "gauge");
  EXPECT_GT(std::stod(value_of(p, "tern_start_time_seconds")), 1.6e9);
  EXPECT_GE(std::stod(value_of(p, "tern_uptime_seconds")), 0.0);
}

TEST(Metrics, LabelsStayBounded) {
  auto r = std::make_unique<Registry>();
  r->set_listeners({"in", "out"});
  // However many indices are used, the series are the configured ones.
  for (std::size_t i = 0; i < 1000; ++i) r->listener(i).received.inc();
  EXPECT_EQ(r->listener(Registry::kMaxListeners + 5).received.value(),
            r->listener(Registry::kMaxListeners - 1).received.value());
  Parsed p = parse(r->render());
  const std::set<std::string> allowed_keys = {"listener", "via", "state", "class", "le"};
  const std::set<std::string> allowed_listeners = {"in", "out"};
  std::size_t received = 0;
  for (const auto& s : p.samples) {
    for (const auto& [key, value] : s.labels) {
      EXPECT_EQ(allowed_keys.count(key), 1u) << key;
      if (key == "listener") {
        EXPECT_EQ(allowed_listeners.count(value), 1u) << value;
      }
      if (key == "via") {
        EXPECT_TRUE(value == "maildir" || value == "lmtp" || value == "smtp") << value;
      }
      if (key == "class") {
        EXPECT_TRUE(value == "2" || value == "3" || value == "4" || value == "5") << value;
      }
    }
    if (s.name == "tern_messages_received_total") ++received;
  }
  EXPECT_EQ(received, 2u);
  EXPECT_EQ(value_of(p, "tern_messages_received_total", {{"listener", "in"}}), "1");
  EXPECT_EQ(value_of(p, "tern_messages_received_total", {{"listener", "out"}}), "1");
}

TEST(Metrics, QueueGaugeComesFromItsSource) {
  auto r = std::make_unique<Registry>();
  // No source: the family is declared, without samples.
  Parsed none = parse(r->render());
  EXPECT_EQ(none.types["tern_queue_messages"], "gauge");
  EXPECT_EQ(find(none, "tern_queue_messages", {{"state", "queued"}}), nullptr);

  r->set_queue_source([] {
    QueueCounts c;
    c.queued = 7;
    c.active = 2;
    c.deferred = 3;
    c.held = 1;
    c.quarantined = 4;
    return std::optional<QueueCounts>(c);
  });
  Parsed p = parse(r->render());
  EXPECT_EQ(value_of(p, "tern_queue_messages", {{"state", "queued"}}), "7");
  EXPECT_EQ(value_of(p, "tern_queue_messages", {{"state", "active"}}), "2");
  EXPECT_EQ(value_of(p, "tern_queue_messages", {{"state", "deferred"}}), "3");
  EXPECT_EQ(value_of(p, "tern_queue_messages", {{"state", "held"}}), "1");
  EXPECT_EQ(value_of(p, "tern_queue_messages", {{"state", "quarantined"}}), "4");

  // A source that cannot count now (the database is down): left out, the
  // rest is still served.
  r->set_queue_source([]() -> std::optional<QueueCounts> { throw std::runtime_error("down"); });
  Parsed down = parse(r->render());
  EXPECT_EQ(find(down, "tern_queue_messages", {{"state", "queued"}}), nullptr);
  EXPECT_NE(find(down, "tern_messages_failed_total"), nullptr);
  r->set_queue_source(nullptr);
  EXPECT_EQ(find(parse(r->render()), "tern_queue_messages", {{"state", "queued"}}), nullptr);
}

}  // namespace
}  // namespace tern::log
