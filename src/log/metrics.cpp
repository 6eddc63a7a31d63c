// See metrics.h.
#include "log/metrics.h"

namespace tern::log {

std::string render_metrics() {
  return {};
}

}  // namespace tern::log
