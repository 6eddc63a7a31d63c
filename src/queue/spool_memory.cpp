#include "queue/spool_memory.h"

namespace tern::queue {

void MemorySpool::apply(SpoolChange change, CommitCallback done) {
  CommitResult result;
  {
    std::lock_guard lock(mu_);
    if (fail_next != SpoolStatus::kOk) {
      result = {fail_next, "injected failure"};
      fail_next = SpoolStatus::kOk;
    } else {
      for (auto& m : change.add) {
        auto id = m.envelope.id;
        std::string content = m.prefix;
        for (std::uint32_t seq = 1; seq <= m.parts; ++seq) content += parts_[{id, seq}];
        content += m.content;
        discard_parts(id);
        messages_[id] = {std::move(m.envelope), std::move(content)};
      }
      for (auto id : change.discard) discard_parts(id);
      for (auto& e : change.update) {
        auto it = messages_.find(e.id);
        if (it != messages_.end()) it->second.first = std::move(e);
      }
      for (auto id : change.remove) messages_.erase(id);
      for (auto& n : change.picked_up) picked_up_.insert(n);
      for (auto& n : change.forget_picked_up) picked_up_.erase(n);
    }
  }
  done(result);
}

CommitResult MemorySpool::store_part(std::uint64_t id, std::uint32_t seq, std::string_view bytes) {
  std::lock_guard lock(mu_);
  if (!room) return {SpoolStatus::kNoSpace, "no room (test)"};
  parts_[{id, seq}] = std::string(bytes);
  return {};
}

void MemorySpool::discard_parts(std::uint64_t id) {
  parts_.erase(parts_.lower_bound({id, 0}), parts_.lower_bound({id + 1, 0}));
}

std::vector<Envelope> MemorySpool::list() {
  std::lock_guard lock(mu_);
  std::vector<Envelope> out;
  for (const auto& [id, m] : messages_) out.push_back(m.first);
  return out;
}

std::optional<Envelope> MemorySpool::find(std::uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = messages_.find(id);
  if (it == messages_.end()) return std::nullopt;
  return it->second.first;
}

std::optional<std::string> MemorySpool::content(std::uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = messages_.find(id);
  if (it == messages_.end()) return std::nullopt;
  return it->second.second;
}

}  // namespace tern::queue
