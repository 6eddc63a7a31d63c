// RFC 6376 §3.2 (tag lists), §3.4 (canonicalisation), §5.4.2 (which header
// instances a signature covers) and the SHA-256 they feed, through EVP.
#include "auth/dkim_canon.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include "util/text.h"

namespace tern::auth {

namespace {

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}
bool is_fws(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string_view trim_fws(std::string_view s) {
  while (!s.empty() && is_fws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_fws(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

std::optional<TagList> parse_tag_list(std::string_view text) {
  TagList tags;
  std::set<std::string> seen;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(';', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view spec = trim_fws(text.substr(pos, end - pos));
    bool last = end == text.size();
    pos = end + 1;
    if (spec.empty()) {
      if (last) break;  // a trailing ";" is allowed (§3.2)
      return std::nullopt;
    }
    std::size_t eq = spec.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view name = trim_fws(spec.substr(0, eq));
    std::string_view value = trim_fws(spec.substr(eq + 1));
    if (name.empty() || !is_alpha(name.front())) return std::nullopt;
    for (char c : name)
      if (!is_alpha(c) && !is_digit(c) && c != '_') return std::nullopt;
    for (char c : value) {
      auto u = static_cast<unsigned char>(c);
      if (!is_fws(c) && (u < 0x21 || u > 0x7e)) return std::nullopt;
    }
    if (!seen.insert(std::string(name)).second) return std::nullopt;  // §3.2: duplicate tag
    tags.emplace_back(std::string(name), std::string(value));
    if (last) break;
  }
  return tags;
}

const std::string* find_tag(const TagList& tags, std::string_view name) {
  for (const auto& [n, v] : tags)
    if (n == name) return &v;
  return nullptr;
}

std::string strip_whitespace(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value)
    if (!is_fws(c)) out += c;
  return out;
}

std::vector<HeaderField> split_header_fields(std::string_view section) {
  std::vector<HeaderField> fields;
  std::size_t pos = 0;
  while (pos < section.size()) {
    // A line ends at LF, or at a CR not followed by LF: a bare CR becomes a
    // line end when the message is sent on (smtp/line_ends.h), so what it
    // hides must be seen as a field here too.
    std::size_t nl = pos;
    while (nl < section.size() && section[nl] != '\n' &&
           !(section[nl] == '\r' && (nl + 1 == section.size() || section[nl + 1] != '\n')))
      ++nl;
    std::size_t next = nl == section.size() ? section.size() : nl + 1;
    std::string_view line = section.substr(pos, next - pos);
    if (line == "\r\n" || line == "\n" || line == "\r") break;  // the end of the header section
    if (is_wsp(line.front()) && !fields.empty()) {
      fields.back().raw += line;
    } else {
      HeaderField f;
      std::size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string_view name = line.substr(0, colon);
        while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
        f.name = std::string(name);
      }
      f.raw = std::string(line);
      fields.push_back(std::move(f));
    }
    pos = next;
  }
  return fields;
}

std::string canon_header(const HeaderField& field, Canon canon) {
  std::string_view raw = field.raw;
  if (canon == Canon::kSimple) {
    std::string out(raw);
    if (out.empty() || out.back() != '\n') out += "\r\n";
    return out;
  }
  std::size_t colon = raw.find(':');
  std::string_view value =
      colon == std::string_view::npos ? std::string_view{} : raw.substr(colon + 1);
  std::string out = lower(field.name);
  out += ':';
  // Unfold (drop CR and LF), runs of white space become one SP, none at the ends (§3.4.2).
  bool space = false;
  bool started = false;
  for (char c : value) {
    if (c == '\r' || c == '\n') continue;
    if (is_wsp(c)) {
      space = true;
      continue;
    }
    if (space && started) out += ' ';
    space = false;
    started = true;
    out += c;
  }
  out += "\r\n";
  return out;
}

std::vector<const HeaderField*> select_headers(const std::vector<HeaderField>& fields,
                                               const std::vector<std::string>& names) {
  std::vector<bool> used(fields.size(), false);
  std::vector<const HeaderField*> out;
  for (const auto& name : names) {
    for (std::size_t i = fields.size(); i-- > 0;) {
      if (used[i] || !util::iequals(fields[i].name, name)) continue;
      used[i] = true;
      out.push_back(&fields[i]);
      break;
    }
  }
  return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 is not available");
}

void Sha256::update(std::string_view data) {
  if (!data.empty()) EVP_DigestUpdate(ctx_.get(), data.data(), data.size());
}

std::string Sha256::final() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_.get(), md, &n);
  return std::string(reinterpret_cast<char*>(md), n);
}

void BodyHasher::end_line() {
  wsp_ = false;
  if (line_content_) {
    out_ += "\r\n";
  } else {
    ++empty_lines_;
  }
  line_content_ = false;
}

void BodyHasher::update(std::string_view chunk) {
  auto content = [this](char c) {
    for (; empty_lines_ > 0; --empty_lines_) {  // hashed as they go: never megabytes at once
      out_ += "\r\n";
      if (out_.size() >= 16384) {
        sha_.update(out_);
        out_.clear();
      }
    }
    if (wsp_ && canon_ == Canon::kRelaxed) out_ += ' ';
    wsp_ = false;
    out_ += c;
    line_content_ = true;
    any_ = true;
  };
  for (char c : chunk) {
    if (cr_) {
      cr_ = false;
      if (c == '\n') {
        end_line();
        continue;
      }
      content('\r');  // a bare CR is content
    }
    if (c == '\r') {
      cr_ = true;
    } else if (canon_ == Canon::kRelaxed && is_wsp(c)) {
      wsp_ = true;
    } else {
      content(c);
    }
    if (out_.size() >= 16384) {
      sha_.update(out_);
      out_.clear();
    }
  }
  sha_.update(out_);
  out_.clear();
}

std::string BodyHasher::final() {
  if (cr_) {
    cr_ = false;
    for (; empty_lines_ > 0; --empty_lines_) out_ += "\r\n";
    if (wsp_ && canon_ == Canon::kRelaxed) out_ += ' ';
    out_ += '\r';
    line_content_ = true;
    any_ = true;
  }
  if (line_content_) out_ += "\r\n";  // a last line without CR LF gets one (§3.4.3, §3.4.4)
  // §3.4.3: an empty simple body is one CR LF; §3.4.4: an empty relaxed body is empty.
  if (canon_ == Canon::kSimple && !any_) out_ = "\r\n";
  sha_.update(out_);
  out_.clear();
  return sha_.final();
}

}  // namespace tern::auth
