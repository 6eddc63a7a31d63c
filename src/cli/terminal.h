// Reading a secret from the person at the terminal: the prompt on stderr,
// typing not echoed. From a pipe it reads one line without a prompt, so
// scripts can feed it.
#pragma once

#include <string>

namespace tern::cli {

std::string read_secret(const std::string& prompt);

}  // namespace tern::cli
