// The --json output of tern's commands. Every string and key goes through
// util::printable(…, Keep::kJson) first (bytes that are not UTF-8 and the
// backslash become \xNN), so the document is valid JSON whatever bytes a
// message, a peer or DNS brought, and those bytes read back exactly; the dump
// is ASCII (\uXXXX), so no control or bidi character reaches a terminal raw.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tern::cli {

std::string json_text(const nlohmann::json& document, int indent = 2);

}  // namespace tern::cli
