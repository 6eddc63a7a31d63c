// The parts of DKIM (RFC 6376) that signing and verification share: the
// tag=value list of §3.2, the "simple" and "relaxed" canonicalisations of
// §3.4 (the body one streaming, so a message never has to be whole in memory),
// the header fields of a header section and the choice of the instances a
// signature covers (§5.4.2), and SHA-256 through OpenSSL's EVP.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern::auth {

enum class Canon { kSimple, kRelaxed };

// A tag-list (RFC 6376 §3.2): tag names are case-sensitive, values keep their
// inner folding white space (each user strips it where §3.5 says so). nullopt:
// the list is not well formed (bad tag name, no "=", a byte outside tval, a
// tag given twice).
using TagList = std::vector<std::pair<std::string, std::string>>;
std::optional<TagList> parse_tag_list(std::string_view text);
const std::string* find_tag(const TagList& tags, std::string_view name);
// The value without any white space (FWS inside b=, bh=, p=, h=).
std::string strip_whitespace(std::string_view value);

// One header field as it appears in the message: "Name: value\r\n" with its
// folding, and its name.
struct HeaderField {
  std::string name;  // as written (compare case-insensitively)
  std::string raw;   // the whole field, CRLF included
};
// Splits a header section (fields, each ending in CR LF; the empty line that
// ends the section may be included and is ignored) into fields. A line that is
// neither a field nor a continuation is kept as a field with an empty name.
std::vector<HeaderField> split_header_fields(std::string_view section);

// RFC 6376 §3.4.1/§3.4.2 of one field; the result ends in CR LF.
std::string canon_header(const HeaderField& field, Canon canon);

// The fields a signature covers, in h= order: for each name, the last
// instance not taken yet (§5.4.2); a name with no instance left is skipped.
std::vector<const HeaderField*> select_headers(const std::vector<HeaderField>& fields,
                                               const std::vector<std::string>& names);

// SHA-256 fed piece by piece.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  std::string final();  // 32 raw octets

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

// The body hash of §3.7, fed the body in chunks of any size (a CR LF may be
// split between two). Memory does not grow with the body: only a count of
// pending empty lines and one pending white-space flag are kept.
class BodyHasher {
 public:
  explicit BodyHasher(Canon canon) : canon_(canon) {}
  void update(std::string_view chunk);
  std::string final();  // raw SHA-256 of the canonical body

 private:
  void end_line();
  Canon canon_;
  Sha256 sha_;
  std::string out_;                // canonical output waiting to be hashed
  std::uint64_t empty_lines_ = 0;  // empty lines not hashed yet (§3.4.3/§3.4.4)
  bool cr_ = false;                // a CR was the last byte seen
  bool wsp_ = false;               // relaxed: white space seen and not written yet
  bool line_content_ = false;      // the current line has something in it
  bool any_ = false;               // simple: the body had any octet
};

}  // namespace tern::auth
