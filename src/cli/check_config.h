// `tern serve --check-config` (like `postfix check`): the configuration is
// read, then everything tern serve would trip over at start or later is
// looked at without binding, dropping privileges or opening the spool — the
// certificates and keys, the DKIM keys, the account of `user`, the folders —
// plus settings that work but that an administrator would not want (an open
// relay, passwords over plaintext). One line per finding on stderr.
#pragma once

#include "config/config.h"

namespace tern::cli {

// 0 when nothing is a problem (warnings allowed), 1 otherwise.
int check_config(const config::Config& config);

}  // namespace tern::cli
