#include "smtp/data_stream.h"

#include <cstring>

namespace tern::smtp {

void DataDecoder::emit(std::string_view bytes, std::string& out) {
  size_ += bytes.size();
  if (size_ > max_size_) {
    too_big_ = true;
    return;
  }
  out.append(bytes);
}

void DataDecoder::emit_line(std::string_view content, bool crlf, std::string& out) {
  if (!mid_line_) {
    if (crlf && prev_crlf_ && content == ".") {
      done_ = true;
      return;
    }
    if (!content.empty() && content.front() == '.') content.remove_prefix(1);  // §4.5.2
  }
  if (content.size() + 2 > max_line_ && !mid_line_) line_too_long_ = true;
  emit(content, out);
  emit("\r\n", out);
  prev_crlf_ = crlf;
  mid_line_ = false;
}

std::size_t DataDecoder::feed(std::string_view input, std::string& out) {
  std::size_t used = 0;
  while (!done_ && used < input.size()) {
    std::string_view rest = input.substr(used);
    const void* lf = std::memchr(rest.data(), '\n', rest.size());
    if (!lf) {
      // No line end yet: keep the start of the line. A line that outgrows the
      // limit can no longer be the end marker, so it is emitted as it comes.
      carry_.append(rest);
      used = input.size();
      if (carry_.size() > max_line_ + 2) {
        line_too_long_ = true;
        bool dot = !mid_line_ && carry_.front() == '.';
        // keep a trailing CR back: it may be the CR of the CR LF that follows
        std::size_t keep = carry_.back() == '\r' ? 1 : 0;
        emit(std::string_view(carry_).substr(dot ? 1 : 0, carry_.size() - keep - (dot ? 1 : 0)),
             out);
        carry_.erase(0, carry_.size() - keep);
        mid_line_ = true;
      }
      break;
    }
    std::size_t len = static_cast<const char*>(lf) - rest.data();
    used += len + 1;
    std::string_view line = rest.substr(0, len);
    if (!carry_.empty()) {
      carry_.append(line);
      line = carry_;
    }
    bool crlf = !line.empty() && line.back() == '\r';
    if (crlf) line.remove_suffix(1);
    emit_line(line, crlf, out);
    carry_.clear();
  }
  return used;
}

}  // namespace tern::smtp
