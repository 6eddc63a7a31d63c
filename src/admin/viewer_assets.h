// The web queue viewer's files (src/admin/viewer/: index.html, viewer.js,
// viewer.css), embedded into the binary at build time by CMake
// (cmake/embed_viewer.cmake writes them into a generated .cpp as raw
// strings): tern serves them from memory, never from the file system.
#pragma once

#include <string_view>

namespace tern::admin {

struct Asset {
  std::string_view name;  // "index.html", "viewer.js", "viewer.css"
  std::string_view content_type;
  std::string_view body;
};

// The asset called name, or null.
const Asset* find_asset(std::string_view name);

}  // namespace tern::admin
