// Slows password guessing per client address: after each failed AUTH the next
// attempt from that address waits longer (0.5 s, 1 s, 2 s … up to 8 s); a
// success or an hour of quiet forgets the address. Shared by all connections.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace tern::server {

class AuthThrottle {
 public:
  std::chrono::milliseconds delay_for(const std::string& address);
  void failed(const std::string& address);
  void succeeded(const std::string& address);

 private:
  struct Entry {
    unsigned failures = 0;
    std::chrono::steady_clock::time_point last;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace tern::server
