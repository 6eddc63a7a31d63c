// `tern talk HOST[:PORT]`: the seed's Telnet session, made pleasant. Line
// editing (backspace works), history and tab completion of verbs through GNU
// readline; every reply followed by its meaning; STARTTLS upgrades the live
// session; after DATA's 354 the lines typed are the message until ".";
// --log FILE keeps the transcript (Telnet's "set logfile"). When standard
// input is not a terminal, commands are read from it, so it can be scripted.
#include <readline/history.h>
#include <readline/readline.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/annotate.h"
#include "cli/commands.h"
#include "config/config.h"
#include "delivery/client_connection.h"
#include "net/stream.h"
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
    conn_ = co_await delivery::ClientConnection::connect(ex, results.begin()->endpoint(),
                                                         std::chrono::seconds(30), error);
    if (!conn_) {
      say("Could not open connection to the host, on port " + std::to_string(ep->port) + ": " +
          error);
      co_return 1;
    }
    say("Connected to " + ep->str() + ". Type SMTP commands; QUIT ends the session.");
    bool greeted = co_await show_reply();
    if (!greeted) co_return 1;
    for (;;) {
      auto line = read_line(in_data_ ? "" : "smtp> ");
      if (!line) {  // end of input
        if (!in_data_) co_await send_command("QUIT");
        break;
      }
      if (in_data_) {
        co_await send_raw(*line + "\r\n");
        if (*line == ".") {
          in_data_ = false;
          bool answered = co_await show_reply();
          if (!answered) break;
        }
        continue;
      }
      if (util::trim(*line).empty()) continue;
      bool going_on = co_await send_command(*line);
      if (!going_on) break;
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
    if (!line.empty() && !in_data_) add_history(line.c_str());
    log("C: " + line);
    return line;
  }

  // Local echo for scripted input (Telnet's "set localecho").
  void echo(const std::string& line) {
    std::printf("%s%s\n", in_data_ ? "" : "smtp> ", line.c_str());
    log("C: " + line);
  }

  void say(const std::string& text) {
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
    log("-- " + text);
  }

  void log(const std::string& text) {
    if (log_) log_ << text << "\n" << std::flush;
  }

  net::awaitable<bool> send_raw(const std::string& bytes) {
    co_return co_await conn_->send(bytes, std::chrono::seconds(o_.timeout_s));
  }

  net::awaitable<bool> send_command(const std::string& line) {
    bool sent = co_await send_raw(line + "\r\n");
    if (!sent) {
      say("The connection was closed by the server.");
      co_return false;
    }
    auto reply = co_await show_reply();
    if (!reply) co_return false;
    std::string verb = util::to_upper(util::trim(line).substr(0, util::trim(line).find(' ')));
    if (verb == "DATA" && last_.code == 354) in_data_ = true;
    if (verb == "QUIT" && last_.code == 221) co_return false;
    if (verb == "STARTTLS" && last_.code == 220) {
      auto context = tls::client_context(false);
      auto host = config::Endpoint::parse(o_.target, 25)->host;
      auto error = co_await conn_->start_tls(*context, host, std::chrono::seconds(o_.timeout_s));
      if (!error.empty()) {
        say("TLS negotiation failed: " + error);
        co_return false;
      }
      say("TLS negotiated: " + net::tls_description(conn_->ssl()) +
          " (the certificate is not verified here; "
          "tern check --starttls shows it). Say EHLO again.");
    }
    co_return true;
  }

  net::awaitable<bool> show_reply() {
    auto r = co_await conn_->read_reply(std::chrono::seconds(o_.timeout_s));
    if (!r.reply) {
      say(r.error.empty() ? "The connection was closed by the server." : r.error);
      co_return false;
    }
    last_ = *r.reply;
    std::string text = reply_text(last_);
    std::printf("%s\n%s", text.c_str(), reply_annotation(last_).c_str());
    std::fflush(stdout);
    log("S: " + text);
    co_return true;
  }

  TalkOptions o_;
  bool interactive_;
  bool in_data_ = false;
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
  cmd->add_option("--timeout", o->timeout_s, "seconds to wait for a reply")->capture_default_str();
  cmd->callback([o, &exit_code] {
    rl_attempted_completion_function = complete_verb;
    rl_readline_name = "tern";
    asio::io_context io;
    Talk talk(*o);
    asio::co_spawn(io, talk.run(io.get_executor()),
                   [&exit_code](std::exception_ptr e, int code) { exit_code = e ? 1 : code; });
    io.run();
  });
}

}  // namespace tern::cli
