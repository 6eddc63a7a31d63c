// The report of `tern check`: each step printed as it happens (or collected
// for --json), with the server's reply, its meaning and, for a failure, the
// possible reasons and what to try next (smtp/reply_meaning.h); a verdict at
// the end; optionally the whole transcript in a log file (Telnet's "set
// logfile").
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "smtp/reply.h"
#include "smtp/reply_meaning.h"

namespace tern::cli {

class CheckReport {
 public:
  CheckReport(bool json, const std::string& log_path);

  void heading(const std::string& text);  // "== MX lookup for example.test"
  void note(const std::string& text);     // an indented line of information
  void sent(const std::string& line);     // "-> EHLO …"
  // A reply to a step; failed replies get reasons. Returns reply.positive().
  bool reply(smtp::Step step, const smtp::Reply& reply, long elapsed_ms);
  // A step that got no reply (connection refused, timeout, not SMTP).
  void failure(smtp::Step step, const std::string& what, long elapsed_ms);
  void set(const std::string& key, nlohmann::json value) { json_[key] = std::move(value); }
  // The last line; prints the JSON document in --json mode.
  void verdict(bool ok, const std::string& text);

 private:
  void out(const std::string& line);
  void diagnosis(smtp::Step step, const smtp::Reply& reply);

  bool json_mode_;
  std::ofstream log_;
  nlohmann::json json_;
  nlohmann::json* current_ = nullptr;
  std::optional<smtp::Step> failed_step_;
  std::string failed_reply_;
  smtp::Diagnosis failed_diagnosis_;
};

}  // namespace tern::cli
