// The subcommands of the tern binary (SPEC §1). app/main.cpp only parses the
// command line with CLI11 and calls one of these; each returns the exit code.
// Errors go to stderr as one line starting with "tern: ".
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace CLI {
class App;
}

namespace tern::cli {

// Adds a subcommand with its options to app; the callback runs it and stores
// the exit code in exit_code.
void add_serve(CLI::App& app, int& exit_code);
void add_queue(CLI::App& app, int& exit_code);
void add_trail(CLI::App& app, int& exit_code);
void add_version(CLI::App& app, int& exit_code);
void add_passwd(CLI::App& app, int& exit_code);
void add_check(CLI::App& app, int& exit_code);
void add_talk(CLI::App& app, int& exit_code);
void add_mx(CLI::App& app, int& exit_code);
void add_spf(CLI::App& app, int& exit_code);
void add_dkim(CLI::App& app, int& exit_code);

// The binary called through a link named sendmail or mailq (SPEC §1): exit
// codes of <sysexits.h>. list_queue runs `tern queue list --config FILE`.
using ListQueue = std::function<int(const std::string& config)>;
int sendmail_main(int argc, char** argv, const ListQueue& list_queue);
int mailq_main(int argc, char** argv, const ListQueue& list_queue);

// Shared: "tern: <message>" on stderr.
void print_error(const std::string& message);
// Runs a command body: its return value is the exit code; a bad configuration
// exits 2 and any other exception 1, each as one line on stderr.
int run_guarded(const std::function<int()>& body);

}  // namespace tern::cli
