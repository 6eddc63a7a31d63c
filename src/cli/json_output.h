// The --json output of tern's commands: queue::json_text (queue_json.h), which
// escapes every string and key losslessly (bytes that are not UTF-8 and the
// backslash become \xNN) and dumps ASCII, so the document is valid JSON
// whatever bytes a message, a peer or DNS brought.
#pragma once

#include "queue/queue_json.h"

namespace tern::cli {

using queue::json_text;

}  // namespace tern::cli
