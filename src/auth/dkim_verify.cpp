// DKIM verification (RFC 6376 §6.1): signature fields parsed from the header
// section, body hashes computed as the body streams past (one per
// canonicalisation in use), then per signature the key record, the body hash
// and the header hash, checked with OpenSSL 3's EVP_DigestVerify.
#include "auth/dkim_verify.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "util/base64.h"
#include "util/text.h"

namespace tern::auth {

namespace {

constexpr std::size_t kMaxSignedFields = 256;  // real signatures list a few dozen

constexpr std::int64_t kFutureSkew = 15 * 60;
// Beyond this many DKIM-Signature fields, the rest are not reported one by one.
constexpr std::size_t kMaxReported = 50;

struct ParseOutcome {
  std::optional<DkimSignature> sig;
  DkimResult result;  // permerror with the reason when sig is empty
};

bool valid_domain_chars(std::string_view s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return s.find("..") == std::string_view::npos;
}

std::optional<std::int64_t> parse_time(std::string_view s) {
  if (s.empty() || s.size() > 12) return std::nullopt;  // §3.5: at most 12 digits
  auto v = util::parse_uint(s);
  if (!v) return std::nullopt;
  return static_cast<std::int64_t>(*v);
}

std::optional<Canon> parse_canon(std::string_view s) {
  if (s == "simple") return Canon::kSimple;
  if (s == "relaxed") return Canon::kRelaxed;
  return std::nullopt;
}

// The colon-separated items of a tag value, white space removed (owned: no
// view into a temporary).
std::vector<std::string> colon_list(std::string_view value) {
  std::vector<std::string> out;
  std::string stripped = strip_whitespace(value);
  for (auto item : util::split(stripped, ':')) out.emplace_back(item);
  return out;
}

// The base64 of a tag value without its folding white space; nullopt if broken.
std::optional<std::string> decode_b64(std::string_view value) {
  return util::base64_decode(strip_whitespace(value));
}

ParseOutcome parse_signature(const HeaderField& field) {
  ParseOutcome out;
  auto fail = [&out](std::string reason) {
    out.result.result = "permerror";
    out.result.reason = std::move(reason);
    return out;
  };
  std::size_t colon = field.raw.find(':');
  std::string_view value = std::string_view(field.raw).substr(colon + 1);
  auto tags = parse_tag_list(value);
  if (!tags) return fail("malformed tag list");
  auto tag = [&tags](std::string_view n) { return find_tag(*tags, n); };
  // What can be reported even when the rest is broken.
  if (auto d = tag("d")) out.result.domain = util::to_lower(*d).substr(0, 253);
  if (auto s = tag("s")) out.result.selector = s->substr(0, 63);
  if (auto b = tag("b")) {
    for (char c : strip_whitespace(*b)) {
      bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/';
      if (!b64 || out.result.b.size() == 8) break;
      out.result.b += c;
    }
  }
  if (!valid_domain_chars(out.result.domain)) out.result.domain.clear();
  if (!valid_domain_chars(out.result.selector)) out.result.selector.clear();

  for (const char* required : {"v", "a", "b", "bh", "d", "h", "s"})
    if (!tag(required)) return fail(std::string("missing tag ") + required + "=");
  if (*tag("v") != "1") return fail("unknown version v=" + util::printable(*tag("v"), 16));
  DkimSignature sig;
  sig.raw = field.raw;
  sig.a = util::to_lower(*tag("a"));
  if (sig.a == "rsa-sha1") return fail("rsa-sha1 not accepted (RFC 8301)");
  if (sig.a != "rsa-sha256" && sig.a != "ed25519-sha256") return fail("unknown algorithm");
  if (tag("l")) return fail("body length tag not accepted");
  if (auto q = tag("q")) {
    bool dns = false;
    for (auto m : colon_list(*q))
      if (util::iequals(m, "dns/txt")) dns = true;
    if (!dns) return fail("no supported query method");
  }
  if (auto c = tag("c")) {
    std::string cv = util::to_lower(*c);
    std::size_t slash = cv.find('/');
    auto hc = parse_canon(std::string_view(cv).substr(0, slash));
    auto bc = slash == std::string::npos ? std::optional<Canon>(Canon::kSimple)
                                         : parse_canon(std::string_view(cv).substr(slash + 1));
    if (!hc || !bc) return fail("unknown canonicalization");
    sig.header_canon = *hc;
    sig.body_canon = *bc;
  }
  sig.d = util::to_lower(*tag("d"));
  sig.s = *tag("s");
  if (!valid_domain_chars(sig.d)) return fail("bad domain d=");
  if (!valid_domain_chars(sig.s)) return fail("bad selector s=");
  bool from = false;
  for (auto name : colon_list(*tag("h"))) {
    if (name.empty()) return fail("bad h= list");
    // Matching costs h= names × header fields: a stranger's list is bounded.
    if (sig.h.size() >= kMaxSignedFields) return fail("h= lists too many fields");
    if (util::iequals(name, "from")) from = true;
    sig.h.emplace_back(name);
  }
  if (!from) return fail("From is not signed");
  if (auto i = tag("i")) {
    sig.i = strip_whitespace(*i);
    std::size_t at = sig.i.rfind('@');
    std::string idom = at == std::string::npos ? "" : util::to_lower(sig.i.substr(at + 1));
    bool sub = idom == sig.d || (idom.size() > sig.d.size() && idom.ends_with("." + sig.d));
    if (!sub) return fail("i= is not in the d= domain");
  }
  if (auto t = tag("t")) {
    sig.t = parse_time(strip_whitespace(*t));
    if (!sig.t) return fail("bad timestamp t=");
  }
  if (auto x = tag("x")) {
    sig.x = parse_time(strip_whitespace(*x));
    if (!sig.x) return fail("bad expiration x=");
    if (sig.t && *sig.x <= *sig.t) return fail("x= is not after t=");
  }
  auto bh = decode_b64(*tag("bh"));
  auto b = decode_b64(*tag("b"));
  if (!bh || bh->empty()) return fail("bad body hash bh=");
  if (!b || b->empty()) return fail("bad signature b=");
  sig.bh = std::move(*bh);
  sig.b = std::move(*b);
  sig.b_text = strip_whitespace(*tag("b"));
  out.sig = std::move(sig);
  return out;
}

// The field with the value of b= deleted (§3.7), and without its final CR LF.
std::string without_b_value(std::string_view raw) {
  while (!raw.empty() && (raw.back() == '\n' || raw.back() == '\r')) raw.remove_suffix(1);
  std::size_t pos = raw.find(':') + 1;
  std::string out(raw.substr(0, pos));
  while (pos <= raw.size()) {
    std::size_t end = raw.find(';', pos);
    if (end == std::string_view::npos) end = raw.size();
    std::string_view spec = raw.substr(pos, end - pos);
    std::size_t eq = spec.find('=');
    std::string_view name = eq == std::string_view::npos ? spec : spec.substr(0, eq);
    std::size_t a = name.find_first_not_of(" \t\r\n");
    std::size_t z = name.find_last_not_of(" \t\r\n");
    bool is_b = a != std::string_view::npos && name.substr(a, z - a + 1) == "b";
    out += is_b ? spec.substr(0, eq + 1) : spec;
    if (end < raw.size()) out += ';';
    pos = end + 1;
  }
  return out;
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

bool verify_signature(EVP_PKEY* key, bool ed25519, std::string_view data, std::string_view sig) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx) return false;
  std::string input;
  const EVP_MD* md = EVP_sha256();
  if (ed25519) {
    Sha256 sha;
    sha.update(data);
    input = sha.final();
    md = nullptr;
  } else {
    input = std::string(data);
  }
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1) return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
}

Pkey decode_key(bool ed25519, const std::string& p) {
  Pkey pkey;
  auto raw = reinterpret_cast<const unsigned char*>(p.data());
  if (ed25519) {
    pkey.reset(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw, p.size()));
    return pkey;
  }
  const unsigned char* q = raw;
  pkey.reset(d2i_PUBKEY(nullptr, &q, static_cast<long>(p.size())));
  if (!pkey) {  // a bare RSAPublicKey, as some publish it
    q = raw;
    pkey.reset(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &q, static_cast<long>(p.size())));
  }
  if (pkey && EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) pkey.reset();
  return pkey;
}

// Public keys decoded from key records, shared by every verifier of the
// process: OpenSSL 3 decodes a DER key through its decoder framework, which
// costs several times the RSA verification itself, and a sending domain signs
// many messages with one key. Keyed by the algorithm and the raw key octets
// (what the record says, so a changed record is a new entry); at most
// kMaxDecodedKeys, all dropped when full. A key is only read once decoded,
// which OpenSSL 3 allows from several threads at once.
constexpr std::size_t kMaxDecodedKeys = 1024;

std::shared_ptr<EVP_PKEY> decoded_key(bool ed25519, const std::string& p) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<EVP_PKEY>> keys;
  std::string id = (ed25519 ? "ed25519:" : "rsa:") + p;
  {
    std::lock_guard lock(mutex);
    auto it = keys.find(id);
    if (it != keys.end()) return it->second;
  }
  Pkey decoded = decode_key(ed25519, p);
  if (!decoded) return nullptr;
  std::shared_ptr<EVP_PKEY> key(decoded.release(), PkeyDeleter{});
  std::lock_guard lock(mutex);
  if (keys.size() >= kMaxDecodedKeys) keys.clear();
  keys.emplace(std::move(id), key);
  return key;
}

}  // namespace

KeyParse parse_dkim_key_record(std::string_view txt) {
  KeyParse out;
  auto tags = parse_tag_list(txt);
  if (!tags) {
    out.error = "malformed key record";
    return out;
  }
  if (!tags->empty() && tags->front().first != "v" && find_tag(*tags, "v")) {
    out.error = "v= is not the first tag of the key record";
    return out;
  }
  if (auto v = find_tag(*tags, "v"); v && *v != "DKIM1") {
    out.error = "not a DKIM1 key record";
    return out;
  }
  DkimKeyRecord key;
  if (auto k = find_tag(*tags, "k")) key.k = util::to_lower(*k);
  if (key.k != "rsa" && key.k != "ed25519") {
    out.error = "unknown key type k=" + util::printable(key.k, 16);
    return out;
  }
  if (auto h = find_tag(*tags, "h")) {
    bool sha256 = false;
    for (auto alg : colon_list(*h))
      if (util::iequals(alg, "sha256")) sha256 = true;
    if (!sha256) {
      out.error = "key not for sha256";
      return out;
    }
  }
  if (auto s = find_tag(*tags, "s")) {
    bool email = false;
    for (auto st : colon_list(*s))
      if (st == "*" || util::iequals(st, "email")) email = true;
    if (!email) {
      out.error = "key not for email";
      return out;
    }
  }
  if (auto t = find_tag(*tags, "t")) {
    for (auto flag : colon_list(*t)) {
      if (flag == "s") key.strict_identity = true;
      if (flag == "y") key.testing = true;
    }
  }
  auto p = find_tag(*tags, "p");
  if (!p) {
    out.error = "key record without p=";
    return out;
  }
  auto raw = decode_b64(*p);
  if (!raw) {
    out.error = "bad key data p=";
    return out;
  }
  key.p = std::move(*raw);
  out.key = std::move(key);
  return out;
}

struct DkimVerifier::Pending {
  DkimSignature sig;
  std::size_t index = 0;  // in results_
};

DkimVerifier::DkimVerifier(std::int64_t now_unix) : now_(now_unix) {}
DkimVerifier::~DkimVerifier() = default;

void DkimVerifier::headers(std::string_view section) {
  fields_ = split_header_fields(section);
  std::size_t seen = 0;
  for (const auto& f : fields_) {
    if (!util::iequals(f.name, "DKIM-Signature")) continue;
    ++seen;
    if (results_.size() >= kMaxReported) continue;
    if (seen > kMaxSignatures) {
      DkimResult r;
      r.result = "permerror";
      r.reason = "too many signatures";
      results_.push_back(std::move(r));
      continue;
    }
    ParseOutcome parsed = parse_signature(f);
    results_.push_back(parsed.result);
    if (!parsed.sig) continue;
    DkimSignature& sig = *parsed.sig;
    if (sig.x && *sig.x < now_) {
      results_.back().result = "fail";
      results_.back().reason = "signature expired";
      continue;
    }
    if (sig.t && *sig.t > now_ + kFutureSkew) {
      results_.back().result = "permerror";
      results_.back().reason = "signature from the future";
      continue;
    }
    if (sig.body_canon == Canon::kSimple && !simple_)
      simple_ = std::make_unique<BodyHasher>(Canon::kSimple);
    if (sig.body_canon == Canon::kRelaxed && !relaxed_)
      relaxed_ = std::make_unique<BodyHasher>(Canon::kRelaxed);
    auto p = std::make_unique<Pending>();
    p->sig = std::move(sig);
    p->index = results_.size() - 1;
    pending_.push_back(std::move(p));
  }
}

void DkimVerifier::body(std::string_view chunk) {
  if (simple_) simple_->update(chunk);
  if (relaxed_) relaxed_->update(chunk);
}

void DkimVerifier::finish_bodies() {
  if (bodies_done_) return;
  bodies_done_ = true;
  if (simple_) simple_hash_ = simple_->final();
  if (relaxed_) relaxed_hash_ = relaxed_->final();
}

DkimResult DkimVerifier::check(Pending& p, const dns::TxtResult& answer) const {
  DkimResult r = results_[p.index];
  const DkimSignature& sig = p.sig;
  auto set = [&r](const char* result, std::string reason) {
    r.result = result;
    r.reason = std::move(reason);
    return r;
  };
  if (dns::is_temporary(answer.error)) return set("temperror", "key lookup failed for now");
  if (!answer.ok()) return set("permerror", "no key");
  std::optional<DkimKeyRecord> key;
  std::string error = "no key";
  for (const auto& rec : answer.records) {
    KeyParse parsed = parse_dkim_key_record(rec.text);
    if (parsed.key) {
      key = std::move(parsed.key);
      break;
    }
    error = parsed.error;
  }
  if (!key) return set("permerror", error);
  if (key->p.empty()) return set("permerror", "key revoked");
  bool ed = sig.a == "ed25519-sha256";
  if ((ed && key->k != "ed25519") || (!ed && key->k != "rsa"))
    return set("permerror", "key type does not match a=");
  if (key->strict_identity && !sig.i.empty()) {
    std::string idom = util::to_lower(sig.i.substr(sig.i.rfind('@') + 1));
    if (idom != sig.d) return set("permerror", "i= must be d= for this key (t=s)");
  }
  const std::string& body_hash = sig.body_canon == Canon::kSimple ? simple_hash_ : relaxed_hash_;
  if (body_hash != sig.bh) return set("fail", "body hash did not verify");

  if (ed && key->p.size() != 32) return set("permerror", "bad ed25519 key");
  std::shared_ptr<EVP_PKEY> pkey = decoded_key(ed, key->p);
  if (!pkey) return set("permerror", "bad key data");
  if (!ed && EVP_PKEY_get_bits(pkey.get()) < 1024)
    return set("fail", "RSA key of " + std::to_string(EVP_PKEY_get_bits(pkey.get())) +
                           " bits is too small (RFC 8301)");

  std::string data;
  for (const HeaderField* f : select_headers(fields_, sig.h))
    data += canon_header(*f, sig.header_canon);
  HeaderField self{"DKIM-Signature", without_b_value(sig.raw)};
  std::string c = canon_header(self, sig.header_canon);
  data.append(c, 0, c.size() - 2);
  if (!verify_signature(pkey.get(), ed, data, sig.b))
    return set("fail", "signature did not verify");
  return set("pass", key->testing ? "testing key (t=y)" : "");
}

net::awaitable<std::vector<DkimResult>> DkimVerifier::finish(dns::Resolver& resolver) {
  finish_bodies();
  for (auto& p : pending_) {
    std::string name = p->sig.s + "._domainkey." + p->sig.d;
    dns::TxtResult answer = co_await resolver.txt(name);
    results_[p->index] = check(*p, answer);
  }
  pending_.clear();
  co_return results_;
}

std::vector<DkimResult> DkimVerifier::finish_with(
    const std::function<dns::TxtResult(const std::string& name)>& key_txt) {
  finish_bodies();
  for (auto& p : pending_) {
    dns::TxtResult answer = key_txt(p->sig.s + "._domainkey." + p->sig.d);
    results_[p->index] = check(*p, answer);
  }
  pending_.clear();
  return results_;
}

}  // namespace tern::auth
