// --json documents made safe to print: strings escaped losslessly before the
// dump, which is ASCII and never throws (json_output.h).
#include "cli/json_output.h"

#include "util/text.h"

namespace tern::cli {

namespace {

nlohmann::json escaped(const nlohmann::json& j) {
  if (j.is_string())
    return util::printable(j.get_ref<const std::string&>(), util::kNoLimit, util::Keep::kJson);
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : j) out.push_back(escaped(item));
    return out;
  }
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : j.items())
      out[util::printable(key, util::kNoLimit, util::Keep::kJson)] = escaped(value);
    return out;
  }
  return j;
}

}  // namespace

std::string json_text(const nlohmann::json& document, int indent) {
  // Nothing invalid is left after escaped(); replace is the net that keeps
  // dump() from ever throwing.
  return escaped(document).dump(indent, ' ', true, nlohmann::json::error_handler_t::replace);
}

}  // namespace tern::cli
