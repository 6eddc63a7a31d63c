// A spool in memory, for unit tests: commits complete at once, in the calling
// thread. fail_next lets a test play a full disk or an I/O error.
#pragma once

#include <map>
#include <mutex>
#include <set>

#include "queue/spool.h"

namespace tern::queue {

class MemorySpool final : public Spool {
 public:
  std::uint64_t next_id() override { return next_id_++; }
  bool has_room(std::uint64_t) override { return room; }
  void apply(SpoolChange change, CommitCallback done) override;
  CommitResult store_part(std::uint64_t id, std::uint32_t seq, std::string_view bytes) override;
  std::size_t stored_parts() const { return parts_.size(); }  // for tests
  std::vector<Envelope> list() override;
  std::optional<Envelope> find(std::uint64_t id) override;
  std::optional<std::string> content(std::uint64_t id) override;
  void close() override {}
  bool keeps_pickup_records() const override { return true; }
  bool was_picked_up(const std::string& name) override {
    std::lock_guard lock(mu_);
    return picked_up_.count(name) > 0;
  }
  std::vector<std::string> picked_up_names() override {
    std::lock_guard lock(mu_);
    return {picked_up_.begin(), picked_up_.end()};
  }

  bool room = true;
  SpoolStatus fail_next = SpoolStatus::kOk;

 private:
  void discard_parts(std::uint64_t id);  // with mu_ held

  std::mutex mu_;
  std::uint64_t next_id_ = 1000;
  std::map<std::uint64_t, std::pair<Envelope, std::string>> messages_;
  std::map<std::pair<std::uint64_t, std::uint32_t>, std::string> parts_;
  std::set<std::string> picked_up_;
};

}  // namespace tern::queue
