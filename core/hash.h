#pragma once
// SHA-256 (OpenSSL) for checksums of everything stored in the repository.

#include <openssl/evp.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace walvault {

class Sha256 {
 public:
  Sha256();
  void update(std::span<const std::byte> data);
  void update(std::string_view data);
  std::string hex_digest();  // finishes the hash; lower-case hex

 private:
  struct Deleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, Deleter> ctx_;
};

std::string sha256_hex(std::string_view data);

}  // namespace walvault
