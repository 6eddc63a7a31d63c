// `tern talk HOST[:PORT]`: the seed's Telnet session, made pleasant. Line
// editing (backspace works), history and tab completion of verbs through GNU
// readline; every reply followed by its meaning; STARTTLS upgrades the live
// session; after DATA's 354 the lines typed are the message until ".";
// --log FILE keeps the transcript (Telnet's "set logfile"). When standard
// input is not a terminal, commands are read from it, so it can be scripted.
// What the server says is shown through util::printable: a reply cannot
// send escape sequences to the terminal.
#include <readline/history.h>
#include <readline/readline.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli/annotate.h"
#include "cli/commands.h"
#include "config/config.h"
#include "delivery/client_connection.h"
#include "net/stream.h"
#include "smtp/diagnosis.h"
#include "smtp/reply_meaning.h"
#include "tls/context.h"
#include "util/text.h"

namespace tern::cli {

namespace {

constexpr const char* kVerbs[] = {"EHLO ", "HELO ",    "MAIL FROM:<", "RCPT TO:<",  "DATA",
                                  "BDAT ", "RSET",     "NOOP",        "VRFY ",      "HELP",
                                  "QUIT",  "STARTTLS", "AUTH PLAIN ", "AUTH LOGIN", nullptr};

char* verb_generator(const char* text, int state) {
  static int index;
  static std::size_t length;
  if (state == 0) {
    index = 0;
    length = std::strlen(text);
  }
  while (const char* verb = kVerbs[index]) {
    ++index;
    if (util::istarts_with(verb, std::string_view(text, length))) return strdup(verb);
  }
  return nullptr;
}

char** complete_verb(const char* text, int start, int) {
  rl_attempted_completion_over = 1;  // no file names
  // The verbs carry their own separator ("EHLO ", "MAIL FROM:<"): readline
  // must not add a space ("MAIL FROM:< chris@…" is a syntax error).
  rl_completion_append_character = '\0';
  if (start != 0) return nullptr;
  return rl_completion_matches(text, verb_generator);
}

struct TalkOptions {
  std::string target;
  std::string log;
  int timeout_s = 300;
};

class Talk {
 public:
  explicit Talk(const TalkOptions& o) : o_(o), interactive_(isatty(STDIN_FILENO)) {
    if (!o.log.empty()) log_.open(o.log, std::ios::app);
  }

  bool log_ok() const { return o_.log.empty() || log_.good(); }

  net::awaitable<int> run(asio::any_io_executor ex) {
    auto ep = config::Endpoint::parse(o_.target, 25);
    if (!ep) {
      print_error("\"" + o_.target + "\" is not HOST[:PORT]");
      co_return 2;
    }
    asio::ip::tcp::resolver resolver(ex);
    auto [ec, results] =
        co_await resolver.async_resolve(ep->host, std::to_string(ep->port), net::use_tuple);
    if (ec || results.empty()) {
      print_error("cannot resolve " + ep->host + ": " + ec.message());
      co_return 1;
    }
    say("Connecting to " + ep->str() + "...");
    std::string error;
    conn_ = co_await delivery::ClientConnection::connect(
        ex, results.begin()->endpoint(), std::chrono::seconds(std::min(o_.timeout_s, 30)), error);
    if (!conn_) {
      say("Could not open connection to the host, on port " + std::to_string(ep->port) + ": " +
          error);
      explain(smtp::diagnose(smtp::Step::kConnect, smtp::Reply{}, error));
      co_return 1;
    }
    say("Connected to " + ep->str() + ". Type SMTP commands; QUIT ends the session." +
        (interactive_ ? " Tab completes a verb, the arrow keys recall earlier commands." : ""));
    step_ = smtp::Step::kGreeting;
    bool greeted = co_await show_reply();
    if (!greeted) co_return 1;
    for (;;) {
      auto line = read_line(in_data_ ? "" : "smtp> ");
      if (!line) {  // end of input
        if (in_data_) {
          say("(end of input inside DATA: the message was not ended with \".\")");
          co_return 1;
        }
        // End of input (Ctrl-D, or the end of a script) says QUIT: show it.
        if (interactive_) {
          std::printf("QUIT\n");
          log("C: QUIT");
        } else {
          echo("QUIT");
        }
        bool open = co_await send_command("QUIT");
        (void)open;
        break;
      }
      if (in_data_) {
        // Dot-stuffing (RFC 5321 §4.5.2): a line typed with a leading "." is
        // sent with one more, so only a lone "." ends the message.
        std::string wire =
            (*line != "." && !line->empty() && line->front() == '.') ? "." + *line : *line;
        bool sent = co_await send_raw(wire + "\r\n");
        if (!sent) {
          say("The connection was closed by the server.");
          co_return 1;
        }
        if (*line == ".") {
          in_data_ = false;
          step_ = smtp::Step::kMessage;
          bool answered = co_await show_reply();
          if (!answered) co_return 1;
        }
        continue;
      }
      if (util::trim(*line).empty()) continue;
      bool going_on = co_await send_command(*line);
      if (!going_on) co_return closed_by_quit_ ? 0 : 1;
    }
    co_return 0;
  }

 private:
  std::optional<std::string> read_line(const char* prompt) {
    if (!interactive_) {
      std::string line;
      if (!std::getline(std::cin, line)) return std::nullopt;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      echo(line);
      return line;
    }
    char* raw = readline(prompt);
    if (!raw) return std::nullopt;
    std::string line(raw);
    std::free(raw);
    // readline ends an empty line without a newline when its prompt is empty
    // too (inside DATA): the blank line between header and body must show.
    if (line.empty() && *prompt == '\0') {
      std::fputc('\n', rl_outstream ? rl_outstream : stdout);
      std::fflush(rl_outstream ? rl_outstream : stdout);
    }
    if (!line.empty() && !in_data_) add_history(line.c_str());
    log("C: " + loggable(line));
    return line;
  }

  // Local echo for scripted input (Telnet's "set localecho").
  void echo(const std::string& line) {
    std::printf("%s%s\n", in_data_ ? "" : "smtp> ", line.c_str());
    std::fflush(stdout);
    log("C: " + loggable(line));
  }

  // The line as the log keeps it: credentials (AUTH's initial response and
  // the lines answering a 334 challenge) are masked.
  std::string loggable(const std::string& line) const {
    if (in_data_) return line;
    if (last_.code == 334) return "****";
    auto words = util::split(util::trim(line), ' ');
    if (words.size() >= 3 && util::iequals(words[0], "AUTH"))
      return std::string(words[0]) + " " + std::string(words[1]) + " ****";
    return line;
  }

  void explain(const smtp::Diagnosis& d) {
    std::string text = diagnosis_text(d);
    std::printf("%s", text.c_str());
    std::fflush(stdout);
  }

  // The step of the seed's procedure a command is, for explanations.
  static std::optional<smtp::Step> step_of(const std::string& verb) {
    if (verb == "EHLO" || verb == "HELO") return smtp::Step::kEhlo;
    if (verb == "STARTTLS") return smtp::Step::kStartTls;
    if (verb == "AUTH") return smtp::Step::kAuth;
    if (verb == "MAIL") return smtp::Step::kMail;
    if (verb == "RCPT") return smtp::Step::kRcpt;
    if (verb == "DATA") return smtp::Step::kData;
    return std::nullopt;
  }

  // A line of tern's that may quote the server (an error, a certificate).
  void say(const std::string& text) {
    std::string shown = util::printable(text);
    std::printf("%s\n", shown.c_str());
    std::fflush(stdout);
    log("-- " + shown);
  }

  void log(const std::string& text) {
    if (log_) log_ << text << "\n" << std::flush;
  }

  net::awaitable<bool> send_raw(const std::string& bytes) {
    co_return co_await conn_->send(bytes, std::chrono::seconds(o_.timeout_s));
  }

  net::awaitable<bool> send_command(const std::string& line) {
    auto trimmed = util::trim(line);
    std::string verb = util::to_upper(trimmed.substr(0, trimmed.find(' ')));
    // After a 334 challenge the line is the client's answer, not a command.
    if (last_.code != 334) step_ = step_of(verb);
    bool sent = co_await send_raw(line + "\r\n");
    if (!sent) {
      say("The connection was closed by the server.");
      co_return false;
    }
    bool answered = co_await show_reply();
    if (!answered) co_return false;
    if (verb == "DATA" && last_.code == 354) in_data_ = true;
    if (verb == "QUIT" && last_.code == 221) {
      closed_by_quit_ = true;
      co_return false;
    }
    if (last_.code == 421) {
      say("The server closed the connection (421).");
      co_return false;
    }
    if (verb == "STARTTLS" && last_.code == 220) {
      auto context = tls::client_context(false);
      auto host = config::Endpoint::parse(o_.target, 25)->host;
      std::error_code ec;
      (void)asio::ip::make_address(host, ec);
      // SNI carries a name, never an address (RFC 6066 §3). (A named
      // variable: GCC 12 miscompiles conditional temporaries around co_await.)
      std::string sni = ec ? host : std::string();
      auto error = co_await conn_->start_tls(*context, sni, std::chrono::seconds(o_.timeout_s));
      if (!error.empty()) {
        say("TLS negotiation failed: " + error);
        explain(smtp::diagnose(smtp::Step::kStartTls, smtp::Reply{},
                               "TLS negotiation failed: " + error));
        co_return false;
      }
      auto cert = tls::peer_certificate(conn_->ssl());
      say("TLS negotiated: " + net::tls_description(conn_->ssl()) + ".");
      if (cert.present)
        say("Certificate: " + cert.subject + ", issued by " + cert.issuer + ", valid until " +
            cert.not_after + (cert.verified ? "" : " (not trusted: " + cert.verify_result + ")") +
            "; tern check --starttls checks it in full.");
      say("The session starts over (RFC 3207): say EHLO again.");
    }
    co_return true;
  }

  net::awaitable<bool> show_reply() {
    auto r = co_await conn_->read_reply(std::chrono::seconds(o_.timeout_s));
    if (!r.reply) {
      std::string what = r.error == "connection closed" ? "The connection was closed by the server."
                                                        : "No reply: " + r.error;
      say(what);
      if (step_ && r.error != "connection closed")
        explain(smtp::diagnose(*step_, smtp::Reply{}, r.error));
      co_return false;
    }
    last_ = *r.reply;
    std::string text = reply_text(last_), shown, logged;
    for (const auto& piece : util::split(text, '\n')) {
      std::string line = util::printable(piece);
      shown += line + "\n";
      logged += (logged.empty() ? "S: " : "\nS: ") + line;
    }
    std::printf("%s%s", shown.c_str(), reply_annotation(last_).c_str());
    if (!last_.positive() && step_) explain(smtp::diagnose(*step_, last_));
    std::fflush(stdout);
    log(logged);
    co_return true;
  }

  TalkOptions o_;
  bool interactive_;
  bool in_data_ = false;
  bool closed_by_quit_ = false;
  std::optional<smtp::Step> step_;  // what the awaited reply answers, for explanations
  std::ofstream log_;
  std::unique_ptr<delivery::ClientConnection> conn_;
  smtp::Reply last_;
};

}  // namespace

void add_talk(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<TalkOptions>();
  auto* cmd =
      app.add_subcommand("talk", "An interactive SMTP session, like Telnet to port 25 but better");
  cmd->add_option("target", o->target, "HOST[:PORT] (port 25 by default)")->required();
  cmd->add_option("--log", o->log, "append the transcript to this file");
  cmd->add_option("--timeout", o->timeout_s, "seconds to wait for a reply")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  cmd->callback([o, &exit_code] {
    rl_attempted_completion_function = complete_verb;
    rl_readline_name = "tern";
    asio::io_context io;
    Talk talk(*o);
    if (!talk.log_ok()) {
      print_error("cannot write the log file " + o->log + ": " + std::strerror(errno));
      exit_code = 2;
      return;
    }
    asio::co_spawn(io, talk.run(io.get_executor()), [&exit_code](std::exception_ptr e, int code) {
      exit_code = code;
      if (!e) return;
      exit_code = 1;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        print_error(ex.what());
      } catch (...) {
        print_error("unexpected error");
      }
    });
    io.run();
  });
}

}  // namespace tern::cli
