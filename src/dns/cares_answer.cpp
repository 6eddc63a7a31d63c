// c-ares answers to typed results; see cares_answer.h.
#include "dns/cares_answer.h"

#include <ares.h>
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <memory>

namespace tern::dns {

namespace {

constexpr int kMaxAddresses = 64;  // more per host than any delivery will try

std::string failure_text(std::string_view what, int status) {
  return std::string(what) + ": " + ares_strerror(status);
}

// The encoded length of the name at pos (RFC 1035 §4.1.4: labels or a pointer).
std::optional<std::size_t> name_length(const std::vector<unsigned char>& m, std::size_t pos) {
  char* name = nullptr;
  long length = 0;
  if (pos >= m.size() || ares_expand_name(m.data() + pos, m.data(), static_cast<int>(m.size()),
                                          &name, &length) != ARES_SUCCESS) {
    return std::nullopt;
  }
  ares_free_string(name);
  return static_cast<std::size_t>(length);
}

std::uint16_t u16(const std::vector<unsigned char>& m, std::size_t pos) {
  return static_cast<std::uint16_t>(m[pos] << 8 | m[pos + 1]);
}

std::string strip_dot(std::string host) {
  if (!host.empty() && host.back() == '.') host.pop_back();
  return host;
}

std::uint32_t ttl_of(int ttl) {
  return ttl < 0 ? 0 : static_cast<std::uint32_t>(ttl);
}

std::uint32_t u32(const std::vector<unsigned char>& m, std::size_t pos) {
  return static_cast<std::uint32_t>(u16(m, pos)) << 16 | u16(m, pos + 2);
}

// A failure of kind, with the negative-caching TTL of the answer when the
// name or the data does not exist (RFC 2308 §5).
template <typename Result>
Result failed(const RawAnswer& answer, DnsError kind, std::string text) {
  Result r = Result::failure(kind, std::move(text));
  if (kind == DnsError::kNxDomain || kind == DnsError::kNoData)
    r.negative_ttl = negative_ttl(answer.message).value_or(0);
  return r;
}

// The result for a query that did not succeed, or nothing if it did.
template <typename Result>
std::optional<Result> unsuccessful(const RawAnswer& answer, std::string_view what) {
  if (answer.status == ARES_SUCCESS) return std::nullopt;
  return failed<Result>(answer, classify_status(answer.status), failure_text(what, answer.status));
}

// Skips the question section; the position of the first answer record.
std::optional<std::size_t> skip_questions(const std::vector<unsigned char>& m) {
  if (m.size() < 12) return std::nullopt;
  std::size_t questions = u16(m, 4), pos = 12;
  for (std::size_t i = 0; i < questions; ++i) {
    auto n = name_length(m, pos);
    if (!n) return std::nullopt;
    pos += *n + 4;  // QTYPE, QCLASS
  }
  return pos;
}

}  // namespace

DnsError classify_status(int status) {
  switch (status) {
    case ARES_SUCCESS:
      return DnsError::kNone;
    case ARES_ENODATA:
      return DnsError::kNoData;
    case ARES_ENOTFOUND:
    case ARES_EBADNAME:
      return DnsError::kNxDomain;
    case ARES_EBADRESP:
      return DnsError::kMalformed;
    default:
      return DnsError::kTemporary;
  }
}

std::optional<std::uint32_t> rrset_ttl(const std::vector<unsigned char>& m, int type) {
  auto start = skip_questions(m);
  if (!start) return std::nullopt;
  std::size_t answers = u16(m, 6), pos = *start;
  std::optional<std::uint32_t> lowest;
  for (std::size_t i = 0; i < answers; ++i) {
    auto n = name_length(m, pos);
    if (!n || pos + *n + 10 > m.size()) return lowest;
    pos += *n;
    std::size_t end = pos + 10 + u16(m, pos + 8);
    if (end > m.size()) return lowest;  // RDATA cut short
    std::uint32_t ttl = static_cast<std::uint32_t>(u16(m, pos + 4)) << 16 | u16(m, pos + 6);
    if (ttl > 0x7fffffffu) ttl = 0;  // RFC 2181 §8: the top bit set means zero
    if (u16(m, pos) == type) lowest = lowest ? std::min(*lowest, ttl) : ttl;
    pos = end;
  }
  return lowest;
}

std::optional<std::uint32_t> negative_ttl(const std::vector<unsigned char>& m) {
  auto start = skip_questions(m);
  if (!start) return std::nullopt;
  std::size_t records = static_cast<std::size_t>(u16(m, 6)) + u16(m, 8), pos = *start;
  for (std::size_t i = 0; i < records; ++i) {  // answers (CNAMEs), then the authority
    auto n = name_length(m, pos);
    if (!n || pos + *n + 10 > m.size()) return std::nullopt;
    pos += *n;
    std::size_t rdata = pos + 10, end = rdata + u16(m, pos + 8);
    if (end > m.size()) return std::nullopt;
    if (u16(m, pos) == 6 /* SOA */) {
      auto mname = name_length(m, rdata);
      if (!mname) return std::nullopt;
      auto rname = name_length(m, rdata + *mname);
      if (!rname) return std::nullopt;
      std::size_t minimum = rdata + *mname + *rname + 16;  // after serial … expire
      if (minimum + 4 > end) return std::nullopt;
      std::uint32_t ttl = u32(m, pos + 4), min_field = u32(m, minimum);
      if (ttl > 0x7fffffffu) ttl = 0;
      if (min_field > 0x7fffffffu) min_field = 0;
      return std::min(ttl, min_field);
    }
    pos = end;
  }
  return std::nullopt;
}

MxResult parse_mx(const RawAnswer& answer, std::string_view what) {
  if (auto failed = unsuccessful<MxResult>(answer, what)) return *failed;
  ares_mx_reply* list = nullptr;
  int status =
      ares_parse_mx_reply(answer.message.data(), static_cast<int>(answer.message.size()), &list);
  std::unique_ptr<ares_mx_reply, void (*)(void*)> owner(list, ares_free_data);
  if (status != ARES_SUCCESS)
    return MxResult::failure(classify_status(status), failure_text(what, status));
  std::uint32_t ttl = rrset_ttl(answer.message, 15 /* MX */).value_or(0);
  MxResult result;
  for (auto* mx = list; mx != nullptr; mx = mx->next) {
    result.records.push_back({strip_dot(mx->host ? mx->host : ""), mx->priority, ttl});
  }
  if (result.records.empty())
    return failed<MxResult>(answer, DnsError::kNoData, failure_text(what, ARES_ENODATA));
  return result;
}

TxtResult parse_txt(const RawAnswer& answer, std::string_view what) {
  if (auto failed_query = unsuccessful<TxtResult>(answer, what)) return *failed_query;
  ares_txt_ext* list = nullptr;
  int status = ares_parse_txt_reply_ext(answer.message.data(),
                                        static_cast<int>(answer.message.size()), &list);
  std::unique_ptr<ares_txt_ext, void (*)(void*)> owner(list, ares_free_data);
  if (status != ARES_SUCCESS)
    return failed<TxtResult>(answer, classify_status(status), failure_text(what, status));
  std::uint32_t ttl = rrset_ttl(answer.message, 16 /* TXT */).value_or(0);
  TxtResult result;
  std::size_t total = 0;
  for (auto* txt = list; txt != nullptr; txt = txt->next) {
    total += txt->length;
    if (total > kMaxTxtAnswer)
      return TxtResult::failure(DnsError::kMalformed,
                                std::string(what) + ": answer larger than 64 KB");
    if (txt->record_start || result.records.empty()) result.records.push_back({"", ttl});
    result.records.back().text.append(reinterpret_cast<const char*>(txt->txt), txt->length);
  }
  if (result.records.empty())
    return failed<TxtResult>(answer, DnsError::kNoData, failure_text(what, ARES_ENODATA));
  return result;
}

AddressResult parse_a(const RawAnswer& answer, std::string_view what) {
  if (auto failed = unsuccessful<AddressResult>(answer, what)) return *failed;
  std::array<ares_addrttl, kMaxAddresses> found{};
  int count = kMaxAddresses;
  int status = ares_parse_a_reply(answer.message.data(), static_cast<int>(answer.message.size()),
                                  nullptr, found.data(), &count);
  if (status != ARES_SUCCESS)
    return AddressResult::failure(classify_status(status), failure_text(what, status));
  AddressResult result;
  for (int i = 0; i < count; ++i) {
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &found[i].ipaddr, text, sizeof text);
    result.records.push_back({text, ttl_of(found[i].ttl), false});
  }
  if (result.records.empty())
    return failed<AddressResult>(answer, DnsError::kNoData, failure_text(what, ARES_ENODATA));
  return result;
}

AddressResult parse_aaaa(const RawAnswer& answer, std::string_view what) {
  if (auto failed = unsuccessful<AddressResult>(answer, what)) return *failed;
  std::array<ares_addr6ttl, kMaxAddresses> found{};
  int count = kMaxAddresses;
  int status = ares_parse_aaaa_reply(answer.message.data(), static_cast<int>(answer.message.size()),
                                     nullptr, found.data(), &count);
  if (status != ARES_SUCCESS)
    return AddressResult::failure(classify_status(status), failure_text(what, status));
  AddressResult result;
  for (int i = 0; i < count; ++i) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, &found[i].ip6addr, text, sizeof text);
    result.records.push_back({text, ttl_of(found[i].ttl), true});
  }
  if (result.records.empty())
    return failed<AddressResult>(answer, DnsError::kNoData, failure_text(what, ARES_ENODATA));
  return result;
}

AddressResult merge_addresses(AddressResult v4, AddressResult v6) {
  if (v4.ok() || v6.ok()) {
    AddressResult both;
    both.records = std::move(v4.records);
    both.records.insert(both.records.end(), v6.records.begin(), v6.records.end());
    return both;
  }
  for (DnsError kind : {DnsError::kNxDomain, DnsError::kTemporary, DnsError::kMalformed}) {
    if (v4.error == kind) return v4;
    if (v6.error == kind) return v6;
  }
  return v4;  // both kNoData
}

}  // namespace tern::dns
