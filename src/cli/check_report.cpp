#include "cli/check_report.h"

#include <cstdio>

#include "cli/annotate.h"
#include "cli/json_output.h"
#include "util/text.h"

namespace tern::cli {

CheckReport::CheckReport(bool json, const std::string& log_path)
    : json_mode_(json), log_path_(log_path) {
  if (!log_path.empty()) log_.open(log_path, std::ios::app);
  json_["steps"] = nlohmann::json::array();
}

// Every line printed or logged passes here: what a server, DNS or a
// certificate said is shown through printable, never as raw control bytes.
void CheckReport::out(const std::string& line) {
  std::string shown = util::printable(line);
  if (!json_mode_) {
    std::printf("%s\n", shown.c_str());
    std::fflush(stdout);
  }
  if (log_.is_open()) log_ << shown << "\n" << std::flush;
}

void CheckReport::out_block(const std::string& text) {
  for (std::size_t start = 0; start < text.size();) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out(text.substr(start, end - start));
    start = end + 1;
  }
}

void CheckReport::log_only(const std::string& line) {
  if (log_.is_open()) log_ << util::printable(line) << "\n" << std::flush;
}

void CheckReport::heading(const std::string& text) {
  out("== " + text);
}

void CheckReport::note(const std::string& text) {
  out("   " + text);
}

void CheckReport::sent(const std::string& line) {
  out("-> " + line);
  json_["steps"].push_back({{"sent", line}});
  open_step_ = true;
}

bool CheckReport::reply(smtp::Step step, const smtp::Reply& reply, long elapsed_ms, bool print) {
  std::string text = reply_text(reply);
  for (std::size_t start = 0;;) {
    auto end = text.find('\n', start);
    out("<- " + text.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  out_block(reply_annotation(reply, "     "));
  if (!open_step_) json_["steps"].push_back(nlohmann::json::object());
  open_step_ = false;
  auto& j = json_["steps"].back();
  j["step"] = smtp::step_name(step);
  j["reply"] = {{"code", reply.code}, {"enhanced", reply.enhanced}, {"lines", reply.lines}};
  j["class"] = smtp::class_meaning(reply.code);
  j["meaning"] = reply.enhanced.empty() ? std::string(smtp::code_meaning(reply.code))
                                        : smtp::enhanced_meaning(reply.enhanced);
  j["ok"] = reply.positive();
  j["elapsed_ms"] = elapsed_ms;
  if (!reply.positive()) {
    explain(step, smtp::diagnose(step, reply), print, reply.summary());
  }
  return reply.positive();
}

void CheckReport::sent_message(const std::string& message) {
  std::string text;
  for (char c : message)
    if (c != '\r') text.push_back(c);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  for (std::size_t start = 0;;) {
    auto end = text.find('\n', start);
    out("-> " + text.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  out("-> .");
  json_["steps"].push_back({{"sent", "."}, {"message", text}});
  open_step_ = true;
}

void CheckReport::failure(smtp::Step step, const std::string& what, long elapsed_ms, bool print,
                          const smtp::Reply& cause) {
  out("   FAILED: " + what);
  if (!open_step_) json_["steps"].push_back(nlohmann::json::object());
  open_step_ = false;
  auto& j = json_["steps"].back();
  j["step"] = smtp::step_name(step);
  j["ok"] = false;
  j["error"] = what;
  j["elapsed_ms"] = elapsed_ms;
  if (cause.code)
    j["reply"] = {{"code", cause.code}, {"enhanced", cause.enhanced}, {"lines", cause.lines}};
  explain(step, smtp::diagnose(step, cause, what), print, what);
}

void CheckReport::explain(smtp::Step step, const smtp::Diagnosis& d, bool print,
                          const std::string& what) {
  if (step == smtp::Step::kQuit) return;  // after the verdict's step: nothing to explain
  failed_reply_ = what;
  failed_step_ = step;
  failed_diagnosis_ = d;
  auto& last = json_["steps"].back();
  last["explanation"] = d.meaning;
  last["reasons"] = d.reasons;
  last["next"] = d.next;
  if (print) {
    out_block(diagnosis_text(d, "   ", smtp::step_name(step)));
  } else if (!d.meaning.empty()) {
    out("   This means: " + d.meaning);
  }
}

void CheckReport::verdict(bool ok, const std::string& text) {
  if (verdict_given_) return;
  verdict_given_ = true;
  out(std::string("== Verdict: ") + (ok ? "PASS — " : "FAIL — ") + text);
  json_["verdict"] = {{"ok", ok}, {"text", text}};
  if (!ok && failed_step_) {
    json_["verdict"]["step"] = smtp::step_name(*failed_step_);
    json_["verdict"]["reply"] = failed_reply_;
    json_["verdict"]["explanation"] = failed_diagnosis_.meaning;
    json_["verdict"]["reasons"] = failed_diagnosis_.reasons;
    json_["verdict"]["next"] = failed_diagnosis_.next;
  }
  if (log_.is_open()) log_ << "\n" << std::flush;
  if (json_mode_) {
    std::printf("%s\n", json_text(json_).c_str());
    std::fflush(stdout);
  }
}

}  // namespace tern::cli
