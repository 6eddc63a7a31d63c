// InternalIds of the PostgreSQL spool, unique across nodes without a round trip
// per id: each nextval() of the sequence tern_ids (INCREMENT BY the block size)
// reserves a block of ids to this process. Contract: take() hands out each id
// of the blocks add()ed once, in increasing order within a block; refill()
// says when to reserve the next block (half of the current one used, no
// spare yet, none asked for), so that take() rarely finds nothing left.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

namespace tern::queue::postgres_spool {

inline constexpr std::uint64_t kIdBlock = 1000;

class IdBlocks {
 public:
  explicit IdBlocks(std::uint64_t block = kIdBlock) : block_(block) {}

  // The next id, or nullopt when every reserved id is used.
  std::optional<std::uint64_t> take() {
    std::lock_guard lock(mu_);
    if (next_ == end_ && spare_) {
      next_ = *spare_;
      end_ = *spare_ + block_;
      spare_.reset();
    }
    if (next_ == end_) return std::nullopt;
    return next_++;
  }
  // True once when a block should be reserved now; the caller then calls
  // add() with it, or failed().
  bool refill() {
    std::lock_guard lock(mu_);
    if (asked_ || spare_) return false;
    if (end_ - next_ > block_ / 2) return false;
    asked_ = true;
    return true;
  }
  // A block reserved: [start, start + block).
  void add(std::uint64_t start) {
    std::lock_guard lock(mu_);
    asked_ = false;
    if (next_ == end_) {
      next_ = start;
      end_ = start + block_;
    } else {
      spare_ = start;
    }
  }
  void failed() {
    std::lock_guard lock(mu_);
    asked_ = false;
  }

 private:
  std::uint64_t block_;
  std::mutex mu_;
  std::uint64_t next_ = 0, end_ = 0;
  std::optional<std::uint64_t> spare_;
  bool asked_ = false;
};

}  // namespace tern::queue::postgres_spool
