// See trail.h.
#include "queue/trail.h"

#include <nlohmann/json.hpp>

namespace tern::queue {

std::string trail_json(const std::vector<TrailEvent>& events) {
  auto list = nlohmann::json::array();
  for (const auto& e : events)
    list.push_back({{"time", e.time_ms},
                    {"event", e.event},
                    {"id", std::to_string(e.id)},
                    {"message_id", e.message_id},
                    {"sender", e.sender},
                    {"recipient", e.recipient},
                    {"remote_host", e.remote_host},
                    {"reply", e.reply}});
  return nlohmann::json{{"events", list}}.dump();
}

}  // namespace tern::queue
