// tern — a mail transfer agent. This file only dispatches the command line to
// the subcommands in src/cli/ (SPEC §1).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  // Diagnostics go to stderr, one line each ("tern: warning: ..."); stdout is
  // for what a command prints.
  auto diagnostics = spdlog::stderr_color_mt("tern");
  diagnostics->set_pattern("tern: %^%l%$: %v");
  spdlog::set_default_logger(diagnostics);
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
