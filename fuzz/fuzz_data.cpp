// libFuzzer target: the DATA stream decoder. Checks, for any input:
//  - splitting the input into two packets anywhere gives the same result;
//  - what was decoded, dot-stuffed and terminated the standard way, decodes to
//    itself and ends exactly at the terminator — so nothing tern stores can end
//    a message early when it is relayed (SMTP smuggling, SPEC §3).
#include <cstdint>
#include <string>

#include "smtp/data_stream.h"

using tern::smtp::DataDecoder;

namespace {

struct Result {
  std::string out;
  std::size_t used = 0;
  bool done = false;
};

Result run(std::string_view input, std::size_t split) {
  DataDecoder d(1 << 20);
  Result r;
  r.used = d.feed(input.substr(0, split), r.out);
  if (!d.done()) r.used += d.feed(input.substr(split), r.out);
  r.done = d.done();
  return r;
}

std::string dot_stuff(const std::string& content) {
  std::string out;
  bool bol = true;
  for (char c : content) {
    if (bol && c == '.') out.push_back('.');
    out.push_back(c);
    bol = c == '\n';
  }
  return out + ".\r\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t split = data[0] % size;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  Result whole = run(input, input.size());
  Result parts = run(input, split < input.size() ? split : input.size());
  if (whole.done != parts.done || whole.used != parts.used || whole.out != parts.out)
    __builtin_trap();
  if (!whole.done) return 0;
  std::string resent = dot_stuff(whole.out);
  Result again = run(resent, resent.size());
  if (!again.done || again.used != resent.size() || again.out != whole.out) __builtin_trap();
  return 0;
}
