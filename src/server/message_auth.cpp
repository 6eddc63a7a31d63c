// The DKIM side of the data path: signing keys, the header fields removed
// (RFC 8601 §5), the From domain (RFC 5322 §3.6.2), and the signer or
// verifier fed the message as it streams in (RFC 6376).
#include "server/message_auth.h"

#include <stdexcept>

#include "util/text.h"

namespace tern::server {

namespace {

bool is_wsp(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// The value of a field, unfolded, comments removed (quoted strings kept).
std::string value_without_comments(std::string_view raw) {
  std::size_t colon = raw.find(':');
  std::string_view v = colon == std::string_view::npos ? std::string_view{} : raw.substr(colon + 1);
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '\r' || c == '\n') continue;
    if (c == '\\' && i + 1 < v.size()) {
      if (depth == 0) {
        out += c;
        out += v[i + 1];
      }
      ++i;
      continue;
    }
    if (quoted) {
      if (c == '"') quoted = false;
      out += c;
      continue;
    }
    if (c == '(') {
      ++depth;
      continue;
    }
    if (c == ')' && depth > 0) {
      --depth;
      if (depth == 0) out += ' ';
      continue;
    }
    if (depth > 0) continue;
    if (c == '"') quoted = true;
    out += c;
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  return s;
}

bool domain_chars(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
  for (char c : d)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_'))
      return false;
  return d.find("..") == std::string_view::npos;
}

// The authserv-id of an Authentication-Results field (RFC 8601 §2.2), as a
// reader would compare it: comments dropped without splitting the token
// (a comment inside it is removed as a reader removes it), a quoted-string
// unquoted, a trailing dot dropped.
std::string authserv_id(std::string_view raw) {
  std::string v = value_without_comments(raw);
  std::string_view s = trim(v);
  std::string id;
  if (s.starts_with('"')) {
    for (std::size_t i = 1; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      id += s[i];
    }
  } else {
    // Up to ';', skipping the spaces a comment left inside the token.
    for (char c : s) {
      if (c == ';') break;
      if (!is_wsp(c)) id += c;
    }
  }
  if (!id.empty() && id.back() == '.') id.pop_back();
  return id;
}

// Where the header section ends: the offset just after the CR LF of its last
// field (the empty line follows), or npos when it does not end in text.
std::size_t section_end(std::string_view content) {
  if (content.starts_with("\r\n")) return 0;
  std::size_t p = content.find("\r\n\r\n");
  return p == std::string_view::npos ? p : p + 2;
}

}  // namespace

std::shared_ptr<const DkimKeyring> DkimKeyring::load(const config::Config& config) {
  auto ring = std::make_shared<DkimKeyring>();
  for (const auto& d : config.dkim) {
    try {
      ring->keys_.push_back(
          {util::to_lower(d.domain), d.selector, auth::DkimPrivateKey::load(d.private_key)});
    } catch (const std::exception& e) {
      throw std::runtime_error("[[dkim]] domain " + d.domain + ": " + e.what());
    }
  }
  return ring;
}

const DkimKeyring::Entry* DkimKeyring::find(std::string_view domain) const {
  for (const auto& k : keys_)
    if (util::iequals(k.domain, domain)) return &k;
  return nullptr;
}

std::string from_domain(const std::vector<auth::HeaderField>& fields) {
  const auth::HeaderField* from = nullptr;
  for (const auto& f : fields) {
    if (!util::iequals(f.name, "From")) continue;
    if (from) return {};  // several From fields
    from = &f;
  }
  if (!from) return {};
  std::string v = value_without_comments(from->raw);
  // One mailbox only: no comma outside quotes and angle brackets.
  bool quoted = false;
  int angle = 0;
  for (char c : v) {
    if (c == '"') quoted = !quoted;
    if (quoted) continue;
    if (c == '<') ++angle;
    if (c == '>' && angle > 0) --angle;
    if (c == ',' && angle == 0) return {};
  }
  std::string_view addr = v;
  std::size_t lt = addr.rfind('<');
  if (lt != std::string_view::npos) {
    addr = addr.substr(lt + 1);
    std::size_t gt = addr.find('>');
    if (gt == std::string_view::npos) return {};
    addr = addr.substr(0, gt);
  }
  addr = trim(addr);
  std::size_t at = addr.rfind('@');
  if (at == std::string_view::npos) return {};
  std::string_view domain = trim(addr.substr(at + 1));
  if (!domain_chars(domain)) return {};
  return util::to_lower(domain);
}

MessageAuth::MessageAuth(Mode mode, std::string hostname, const DkimKeyring* keys,
                         std::string mail_from_domain, std::int64_t now_unix)
    : mode_(mode),
      hostname_(std::move(hostname)),
      keys_(keys),
      mail_from_domain_(std::move(mail_from_domain)),
      now_(now_unix) {}

std::optional<std::string> MessageAuth::headers_done(std::string_view section) {
  auto fields = auth::split_header_fields(section);
  std::string kept;
  kept.reserve(section.size());
  std::vector<auth::HeaderField> remaining;
  bool removed = false;
  for (auto& f : fields) {
    bool ours = util::iequals(f.name, "Authentication-Results") &&
                util::iequals(authserv_id(f.raw), hostname_);
    // Only tern says whether a message is to be quarantined.
    if (mode_ == Mode::kVerify && util::iequals(f.name, "X-Tern-Dmarc")) ours = true;
    if (ours) {
      removed = true;
      continue;
    }
    kept += f.raw;
    remaining.push_back(std::move(f));
  }
  bool has_from = false;
  for (const auto& f : remaining)
    if (util::iequals(f.name, "From")) has_from = true;
  from_domain_ = from_domain(remaining);
  from_unusable_ = has_from && from_domain_.empty();
  if (mode_ == Mode::kSign && keys_) {
    // The author's domain; the envelope's only when the message names no author.
    std::string domain = has_from ? from_domain_ : mail_from_domain_;
    if (const auto* entry = domain.empty() ? nullptr : keys_->find(domain)) {
      signer_ =
          std::make_unique<auth::DkimSigner>(entry->key, entry->domain, entry->selector, now_);
      signer_->headers(kept);
      signing_domain_ = entry->domain;
    }
  } else if (mode_ == Mode::kVerify) {
    verifier_ = std::make_unique<auth::DkimVerifier>(now_);
    verifier_->headers(kept);
  }
  if (!removed) return std::nullopt;
  return kept;
}

std::string MessageAuth::pass(std::string content, bool last) {
  if (in_headers_) {
    in_headers_ = false;
    std::size_t end = section_end(content);
    if (end == std::string::npos && !last) {
      // A header section longer than a part: stored as it is, without DKIM;
      // its From cannot be read, so DMARC cannot pass (quarantined).
      if (mode_ == Mode::kVerify) {
        verifier_ = std::make_unique<auth::DkimVerifier>(now_);
        verifier_->headers("");
        from_unusable_ = true;
      }
      if (mode_ == Mode::kSign) mode_ = Mode::kNone;
      return content;
    }
    if (end == std::string::npos) end = content.size();  // no body at all
    auto kept = headers_done(std::string_view(content).substr(0, end));
    std::string_view body = std::string_view(content).substr(end);
    if (body.starts_with("\r\n")) body.remove_prefix(2);  // the empty line
    if (signer_) signer_->body(body);
    if (verifier_) verifier_->body(body);
    if (!kept) return content;  // nothing removed: no copy
    kept->append(content, end);
    return std::move(*kept);
  }
  if (signer_) signer_->body(content);
  if (verifier_) verifier_->body(content);
  return content;
}

std::string MessageAuth::signature(std::string_view added_fields) {
  if (!signer_) return {};
  if (!added_fields.empty()) signer_->headers(added_fields);
  std::string field = signer_->finish();
  signer_.reset();
  return field;
}

}  // namespace tern::server
