// The report of `tern check`: each step printed as it happens (or collected
// for --json), with what was sent, the server's reply, the meaning of its
// class and enhanced code and, for a failure, what it means, the possible
// reasons (the seed's lists) and what to try next (smtp/diagnosis.h); a
// verdict at the end; optionally the whole transcript appended to a log file
// (Telnet's "set logfile").
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "smtp/reply.h"
#include "smtp/diagnosis.h"
#include "smtp/reply_meaning.h"

namespace tern::cli {

class CheckReport {
 public:
  CheckReport(bool json, const std::string& log_path);

  // False when the log file was asked for but cannot be written.
  bool log_ok() const { return log_path_.empty() || log_.good(); }

  void log_only(const std::string& line);  // to the log file only (its header)
  void heading(const std::string& text);   // "== MX lookup for example.test"
  void note(const std::string& text);      // an indented line of information
  void sent(const std::string& line);      // "-> EHLO …"
  // A reply to a step. A failure is explained (what it means, reasons, what
  // to try next) unless explain is false (a host that is skipped for the
  // next one). Returns reply.positive().
  bool reply(smtp::Step step, const smtp::Reply& reply, long elapsed_ms, bool explain = true);
  // A step that got no reply: what happened instead ("Connection refused",
  // "timed out after 30 s", "not SMTP: …"); cause: the reply that stands for
  // it, if any (the MX lookup's 550 5.1.2 for NXDOMAIN).
  void failure(smtp::Step step, const std::string& what, long elapsed_ms, bool explain = true,
               const smtp::Reply& cause = {});
  // The test message, shown line by line like the seed's Telnet session, and
  // the "." that ends it.
  void sent_message(const std::string& message);
  void set(const std::string& key, nlohmann::json value) { json_[key] = std::move(value); }
  void add(const std::string& key, nlohmann::json value) { json_[key].push_back(std::move(value)); }
  // The last line; prints the JSON document in --json mode. Only the first
  // call counts.
  void verdict(bool ok, const std::string& text);
  bool has_verdict() const { return verdict_given_; }

 private:
  void out(const std::string& line);
  void out_block(const std::string& text);  // several lines, each through out()
  void explain(smtp::Step step, const smtp::Diagnosis& d, bool print, const std::string& what);

  bool json_mode_;
  std::string log_path_;
  std::ofstream log_;
  nlohmann::json json_;
  bool open_step_ = false;  // the last "steps" entry was sent and awaits its reply
  bool verdict_given_ = false;
  std::optional<smtp::Step> failed_step_;
  std::string failed_reply_;
  smtp::Diagnosis failed_diagnosis_;
};

}  // namespace tern::cli
