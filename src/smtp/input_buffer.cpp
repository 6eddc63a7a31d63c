#include "smtp/input_buffer.h"

#include <cstring>

namespace tern::smtp {

char* InputBuffer::prepare(std::size_t min) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (buf_.size() - end_ < min) {
    if (begin_ > 0) {  // compact first
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < min) buf_.resize(end_ + min);
  }
  return buf_.data() + end_;
}

void InputBuffer::consume(std::size_t n) {
  begin_ += n;
  if (begin_ >= end_) begin_ = end_ = 0;
}

void InputBuffer::clear() {
  begin_ = end_ = 0;
  skipping_ = false;
}

void InputBuffer::shrink_if_empty() {
  if (begin_ == end_ && buf_.capacity() > 0) {
    std::string().swap(buf_);
    begin_ = end_ = 0;
  }
}

InputBuffer::LineResult InputBuffer::next_line(std::size_t limit) {
  LineResult r;
  std::string_view d = data();
  const void* lf = std::memchr(d.data(), '\n', d.size());
  if (!lf) {
    if (d.size() > limit) {  // too long: drop what we have, keep dropping to the LF
      skipping_ = true;
      consume(d.size());
    }
    return r;
  }
  std::size_t len = static_cast<const char*>(lf) - d.data();
  consume(len + 1);
  if (skipping_ || len > limit + 1) {
    skipping_ = false;
    r.status = LineStatus::kTooLong;
    return r;
  }
  r.status = LineStatus::kLine;
  r.crlf = len > 0 && d[len - 1] == '\r';
  r.line = d.substr(0, r.crlf ? len - 1 : len);
  if (r.line.size() > limit) r.status = LineStatus::kTooLong;
  return r;
}

}  // namespace tern::smtp
