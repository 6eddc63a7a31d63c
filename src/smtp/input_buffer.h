// The bytes a session has read but not yet used, and the split into command
// lines (RFC 5321 §2.3.8). A line ends at LF; a CR before it is dropped. A bare
// LF ends a command line too (SPEC §3), but the DATA decoder, which reads from
// the same buffer, never lets one end a message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tern::smtp {

class InputBuffer {
 public:
  enum class LineStatus { kLine, kNeedMore, kTooLong };
  struct LineResult {
    LineStatus status = LineStatus::kNeedMore;
    std::string_view line;  // without CR LF; valid until the next call that changes the buffer
    bool crlf = false;      // ended with CR LF (false: bare LF)
  };

  // A writable area of at least min bytes at the end of the buffer; then commit(n).
  char* prepare(std::size_t min);
  std::size_t writable() const { return buf_.size() - end_; }
  void commit(std::size_t n) { end_ += n; }

  std::string_view data() const { return {buf_.data() + begin_, end_ - begin_}; }
  bool empty() const { return begin_ == end_; }
  // Part of a line has arrived (buffered, or dropped because it is too long).
  bool line_started() const { return begin_ != end_ || skipping_; }
  void consume(std::size_t n);
  // Drops everything buffered (bytes pipelined after STARTTLS, RFC 3207 §4.2).
  void clear();

  // The next complete line. A line longer than limit is discarded up to and
  // including its LF and reported once as kTooLong when that LF arrives; the
  // memory used stays bounded by limit however long the line is.
  LineResult next_line(std::size_t limit);

  // Frees the storage of an idle buffer (many idle connections cost little).
  void shrink_if_empty();

 private:
  std::string buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool skipping_ = false;  // inside a line that was too long
};

}  // namespace tern::smtp
