#include "queue/spool_memory.h"

namespace tern::queue {

void MemorySpool::commit(NewMessage m, CommitCallback done) {
  CommitResult result;
  {
    std::lock_guard lock(mu_);
    if (fail_next != SpoolStatus::kOk) {
      result = {fail_next, "injected failure"};
      fail_next = SpoolStatus::kOk;
    } else {
      auto id = m.envelope.id;
      messages_[id] = {std::move(m.envelope), m.prefix + m.content};
    }
  }
  done(result);
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

CommitResult MemorySpool::update(const Envelope& e) {
  std::lock_guard lock(mu_);
  auto it = messages_.find(e.id);
  if (it == messages_.end()) return {SpoolStatus::kError, "no such message"};
  it->second.first = e;
  return {};
}

CommitResult MemorySpool::remove(std::uint64_t id) {
  std::lock_guard lock(mu_);
  messages_.erase(id);
  return {};
}

}  // namespace tern::queue
