// tern's metrics (SPEC §5): counters, gauges and histograms kept in atomics by
// the code that sees the event (sessions, the scheduler, the spool), rendered
// in the Prometheus text exposition format 0.0.4 for `GET /metrics`.
//
// Contract: updating a metric is lock-free and never allocates on the hot
// path; labels stay bounded (listener name, result class — never an address or
// a domain). render_metrics() may block briefly (gauges read at scrape time)
// and is called off the event loops.
#pragma once

#include <string>

namespace tern::log {

// Every tern_* series, in text format 0.0.4.
std::string render_metrics();

}  // namespace tern::log
