// The queue as JSON, one serialization for `tern queue list|show --json` and
// the admin listener's GET /api/queue and /api/queue/ID (SPEC §1, §5): an
// object per message with id, message_id, sender, recipients (address,
// status, …), size, arrival, next_attempt. json_text() makes any document safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "queue/envelope.h"

namespace tern::queue {

// "2026-12-03T18:00:00Z" for Unix milliseconds; "" for 0 (not set).
std::string iso_time(std::int64_t ms);

// One queued message's envelope and recipients.
nlohmann::json envelope_json(const Envelope& e);

// The array `tern queue list --json` prints.
nlohmann::json queue_json(const std::vector<Envelope>& messages);

// The document as ASCII text: every string and key through
// util::printable(…, Keep::kJson) first (bytes that are not UTF-8 and the
// backslash become \xNN), so it is valid JSON whatever bytes a message
// brought, those bytes read back exactly, and dump() never throws.
std::string json_text(const nlohmann::json& document, int indent = 2);

}  // namespace tern::queue
