// tern — a mail transfer agent. This file only dispatches the command line to
// the subcommands in src/cli/ (SPEC §1); called through a link named
// sendmail or mailq, it is that command (src/cli/sendmail.cpp).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"

namespace {

int run_tern(int argc, char** argv) {
  CLI::App app{"tern — a mail transfer agent: receive, queue, deliver, and test SMTP"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tern ") + TERN_VERSION);
  int exit_code = 0;
  tern::cli::add_serve(app, exit_code);
  tern::cli::add_queue(app, exit_code);
  tern::cli::add_trail(app, exit_code);
  tern::cli::add_passwd(app, exit_code);
  tern::cli::add_version(app, exit_code);
  tern::cli::add_check(app, exit_code);
  tern::cli::add_mx(app, exit_code);
  tern::cli::add_talk(app, exit_code);
  tern::cli::add_spf(app, exit_code);
  tern::cli::add_dkim(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() != 0) {
      // One clear line, not CLI11's whole help page.
      tern::cli::print_error(e.what() + std::string(" (see tern --help)"));
      return 2;
    }
    return app.exit(e);
  }
  return exit_code;
}

// mailq and sendmail -bp: exactly `tern queue list --config FILE`.
int list_queue(const std::string& config) {
  std::vector<std::string> words{"tern", "queue", "list", "--config", config};
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return run_tern(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

int main(int argc, char** argv) {
  // Diagnostics go to stderr, one line each ("tern: warning: ..."); stdout is
  // for what a command prints.
  auto diagnostics = spdlog::stderr_color_mt("tern");
  diagnostics->set_pattern("tern: %^%l%$: %v");
  spdlog::set_default_logger(diagnostics);
  std::string_view name = argc > 0 ? argv[0] : "tern";
  if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  if (name == "sendmail") return tern::cli::sendmail_main(argc, argv, list_queue);
  if (name == "mailq") return tern::cli::mailq_main(argc, argv, list_queue);
  return run_tern(argc, argv);
}
