// DKIM signing keys and the signer (RFC 6376 §5, RFC 8463, RFC 8301): every
// cryptographic step goes through OpenSSL 3's EVP interface.
#include "auth/dkim_sign.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "util/base64.h"
#include "util/text.h"

namespace tern::auth {

namespace {

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

using Bio = std::unique_ptr<BIO, int (*)(BIO*)>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)>;

// Folds a tag list into lines of about 76 octets: breaks only at the
// separators given (";" between tags, ":" in h=), and anywhere in b=.
void append_folded(std::string& out, std::size_t& column, std::string_view piece) {
  if (column + piece.size() > 76 && column > 1) {
    out += "\r\n\t";
    column = 1;
  }
  out += piece;
  column += piece.size();
}

}  // namespace

std::shared_ptr<const DkimPrivateKey> DkimPrivateKey::from_pem(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) throw std::runtime_error("out of memory");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (!key) throw std::runtime_error("not a PEM private key (" + openssl_error() + ")");
  int type = EVP_PKEY_get_base_id(key);
  if (type == EVP_PKEY_ED25519)
    return std::make_shared<DkimPrivateKey>(key, DkimAlgorithm::kEd25519Sha256);
  if (type == EVP_PKEY_RSA) {
    int bits = EVP_PKEY_get_bits(key);
    if (bits < 1024) {
      EVP_PKEY_free(key);
      throw std::runtime_error(
          "an RSA key of " + std::to_string(bits) +
          " bits is too small for DKIM (RFC 8301 §3.2: at least 1024; use 2048)");
    }
    return std::make_shared<DkimPrivateKey>(key, DkimAlgorithm::kRsaSha256);
  }
  EVP_PKEY_free(key);
  throw std::runtime_error("the key is neither RSA nor Ed25519");
}

std::shared_ptr<const DkimPrivateKey> DkimPrivateKey::load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("DKIM key " + file.string() + ": cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return from_pem(ss.str());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("DKIM key " + file.string() + ": " + e.what());
  }
}

std::shared_ptr<const DkimPrivateKey> DkimPrivateKey::generate(DkimAlgorithm algorithm) {
  EVP_PKEY* key = algorithm == DkimAlgorithm::kEd25519Sha256
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  if (!key) throw std::runtime_error("key generation failed: " + openssl_error());
  return std::make_shared<DkimPrivateKey>(key, algorithm);
}

std::string DkimPrivateKey::private_pem() const {
  Bio bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    throw std::runtime_error("cannot write the key: " + openssl_error());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string DkimPrivateKey::public_record_value() const {
  if (algorithm_ == DkimAlgorithm::kEd25519Sha256) {
    unsigned char raw[32];
    size_t n = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key_.get(), raw, &n) != 1)
      throw std::runtime_error("cannot read the public key: " + openssl_error());
    return util::base64_encode(std::string_view(reinterpret_cast<char*>(raw), n));
  }
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key_.get(), &der);
  if (n <= 0) throw std::runtime_error("cannot encode the public key: " + openssl_error());
  std::string out = util::base64_encode(std::string_view(reinterpret_cast<char*>(der), n));
  OPENSSL_free(der);
  return out;
}

std::string DkimPrivateKey::txt_record() const {
  std::string k = algorithm_ == DkimAlgorithm::kEd25519Sha256 ? "ed25519" : "rsa";
  return "v=DKIM1; k=" + k + "; p=" + public_record_value();
}

std::string DkimPrivateKey::sign(std::string_view data) const {
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx) throw std::runtime_error("out of memory");
  std::string input;
  const EVP_MD* md = EVP_sha256();
  if (algorithm_ == DkimAlgorithm::kEd25519Sha256) {
    // RFC 8463 §3: PureEdDSA over the SHA-256 hash of the data.
    Sha256 sha;
    sha.update(data);
    input = sha.final();
    md = nullptr;
  } else {
    input = std::string(data);
  }
  if (EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key_.get()) != 1)
    throw std::runtime_error("signing failed: " + openssl_error());
  size_t len = 0;
  auto in = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()) != 1)
    throw std::runtime_error("signing failed: " + openssl_error());
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                     input.size()) != 1)
    throw std::runtime_error("signing failed: " + openssl_error());
  sig.resize(len);
  return sig;
}

const std::vector<std::string>& dkim_signed_header_names() {
  static const std::vector<std::string> names{"From",
                                              "Reply-To",
                                              "Subject",
                                              "Date",
                                              "To",
                                              "Cc",
                                              "Resent-Date",
                                              "Resent-From",
                                              "Resent-To",
                                              "Resent-Cc",
                                              "In-Reply-To",
                                              "References",
                                              "List-Id",
                                              "List-Help",
                                              "List-Unsubscribe",
                                              "List-Subscribe",
                                              "List-Post",
                                              "List-Owner",
                                              "List-Archive",
                                              "Message-ID",
                                              "MIME-Version",
                                              "Content-Type",
                                              "Content-Transfer-Encoding"};
  return names;
}

DkimSigner::DkimSigner(std::shared_ptr<const DkimPrivateKey> key, std::string domain,
                       std::string selector, std::int64_t unix_time)
    : key_(std::move(key)),
      domain_(std::move(domain)),
      selector_(std::move(selector)),
      time_(unix_time) {}

void DkimSigner::headers(std::string_view section) {
  for (auto& f : split_header_fields(section)) fields_.push_back(std::move(f));
}

std::string DkimSigner::finish() {
  // h=: every present instance of each name, bottom-up (§5.4.2), and From once
  // more than present, so a From added later breaks the signature (§8.15).
  std::vector<std::string> h;
  for (const auto& name : dkim_signed_header_names()) {
    std::size_t count = 0;
    for (const auto& f : fields_)
      if (util::iequals(f.name, name)) ++count;
    for (std::size_t i = 0; i < count; ++i) h.push_back(util::to_lower(name));
  }
  h.push_back("from");
  std::string bh = util::base64_encode(body_.final());
  bool ed = key_->algorithm() == DkimAlgorithm::kEd25519Sha256;

  std::string field = "DKIM-Signature:";
  std::size_t column = field.size();
  append_folded(field, column, " v=1;");
  append_folded(field, column, std::string(" a=") + (ed ? "ed25519-sha256;" : "rsa-sha256;"));
  append_folded(field, column, " c=relaxed/relaxed;");
  append_folded(field, column, " d=" + domain_ + ";");
  append_folded(field, column, " s=" + selector_ + ";");
  append_folded(field, column, " t=" + std::to_string(time_) + ";");
  for (std::size_t i = 0; i < h.size(); ++i)
    append_folded(field, column, (i == 0 ? " h=" : ":") + h[i] + (i + 1 == h.size() ? ";" : ""));
  append_folded(field, column, " bh=" + bh + ";");
  append_folded(field, column, " b=");

  // §3.7: the selected fields, then this field with an empty b=, without its CR LF.
  std::string data;
  for (const HeaderField* f : select_headers(fields_, h)) data += canon_header(*f, Canon::kRelaxed);
  std::string self = canon_header(HeaderField{"DKIM-Signature", field}, Canon::kRelaxed);
  data.append(self, 0, self.size() - 2);

  std::string b = util::base64_encode(key_->sign(data));
  for (std::size_t i = 0; i < b.size();) {
    std::size_t room = column < 76 ? 76 - column : 0;
    if (room == 0) {
      field += "\r\n\t ";
      column = 2;
      continue;
    }
    std::size_t n = std::min(room, b.size() - i);
    field.append(b, i, n);
    column += n;
    i += n;
  }
  field += "\r\n";
  return field;
}

}  // namespace tern::auth
