// A Resolver answering from tables, for the SPF, DMARC and sender-check unit
// tests: TXT, MX and A/AAAA records by name; names listed in `temporary`
// fail with a timeout; every other name is NXDOMAIN. Records every question.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dns/resolver.h"

namespace tern::test_dns {

class TableResolver : public dns::Resolver {
 public:
  std::map<std::string, std::vector<std::string>> txt_records;
  std::map<std::string, std::vector<std::pair<int, std::string>>> mx_records;
  std::map<std::string, std::vector<std::string>> address_records;
  std::set<std::string> temporary;  // these names time out, whatever the type
  std::vector<std::string> asked;

  TableResolver& txt(const std::string& name, const std::string& text) {
    txt_records[name].push_back(text);
    return *this;
  }
  TableResolver& host(const std::string& name, const std::string& address) {
    address_records[name].push_back(address);
    return *this;
  }
  TableResolver& mx(const std::string& name, int preference, const std::string& host) {
    mx_records[name].push_back({preference, host});
    return *this;
  }

  net::awaitable<dns::TxtResult> txt(std::string name) override {
    asked.push_back("TXT " + name);
    if (temporary.count(name))
      co_return dns::TxtResult::failure(dns::DnsError::kTemporary, "timeout");
    dns::TxtResult r;
    if (auto it = txt_records.find(name); it != txt_records.end()) {
      for (const auto& t : it->second) r.records.push_back({t, 300});
      co_return r;
    }
    co_return missing<dns::TxtResult>(name);
  }
  net::awaitable<dns::MxResult> mx(std::string name) override {
    asked.push_back("MX " + name);
    if (temporary.count(name))
      co_return dns::MxResult::failure(dns::DnsError::kTemporary, "timeout");
    dns::MxResult r;
    if (auto it = mx_records.find(name); it != mx_records.end()) {
      for (const auto& [p, h] : it->second)
        r.records.push_back({h, static_cast<std::uint16_t>(p), 300});
      co_return r;
    }
    co_return missing<dns::MxResult>(name);
  }
  net::awaitable<dns::AddressResult> addresses(std::string name) override {
    asked.push_back("A " + name);
    if (temporary.count(name))
      co_return dns::AddressResult::failure(dns::DnsError::kTemporary, "timeout");
    dns::AddressResult r;
    if (auto it = address_records.find(name); it != address_records.end()) {
      for (const auto& a : it->second)
        r.records.push_back({a, 300, a.find(':') != std::string::npos});
      co_return r;
    }
    co_return missing<dns::AddressResult>(name);
  }

  // NODATA when the name has records of another type, else NXDOMAIN.
  template <typename Result>
  Result missing(const std::string& name) const {
    bool exists = txt_records.count(name) || mx_records.count(name) || address_records.count(name);
    return Result::failure(exists ? dns::DnsError::kNoData : dns::DnsError::kNxDomain, name);
  }
};

// Runs a coroutine to completion on its own event loop.
template <typename T>
T run_task(net::awaitable<T> task) {
  asio::io_context io;
  std::optional<T> result;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) result = std::move(value);
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

}  // namespace tern::test_dns
