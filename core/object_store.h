#pragma once
// The content-addressed store: REPO/store/<2 hex>/<sha256>.lz4, one object per chunk of file
// content, named by the SHA-256 of its uncompressed bytes and stored as one LZ4 frame (block
// and content checksums, `lz4 -t` reads it). An object is written once and never changed:
// putting content that is already there costs a stat. Reading decodes the frame and compares
// the content's SHA-256 with the name, so a damaged object is never handed out as content.
//
// Durability: a new object goes through a temporary name, fdatasync, rename (batched, see
// sync()); the directories it was renamed into are fsynced by sync(), which a writer calls
// before it commits anything that refers to the object (a snapshot manifest). An object visible
// under its final name is therefore complete unless the disk damaged it afterwards, which verify
// finds.

#include <sys/types.h>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/fs.h"
#include "core/lz4_frame.h"

namespace walvault {

struct PutResult {
  std::string sha256;         // of the content: the object's name
  uint64_t stored_bytes = 0;  // size of the object file (now or as found)
  bool added = false;         // false: the object was already there
};

// What reading an object found.
struct ObjectCheck {
  bool ok = false;
  uint64_t bytes = 0;         // decoded content size (when ok)
  uint64_t stored_bytes = 0;  // file size (when present)
  std::string problem;        // "missing", "damaged: ...", "content does not match its name"
};

class ObjectStore {
 public:
  explicit ObjectStore(fs::path dir);
  ~ObjectStore();
  ObjectStore(const ObjectStore&) = delete;
  ObjectStore& operator=(const ObjectStore&) = delete;

  // When root writes into a repository that belongs to another user (postgres), new objects
  // and directories are given to that user, so the repository stays readable by the user that
  // runs every other walvault command.
  void set_owner(uid_t uid, gid_t gid);

  const fs::path& dir() const { return dir_; }
  fs::path object_path(std::string_view sha256_hex) const;
  static bool is_object_name(std::string_view sha256_hex);

  // Size of the object file, or nullopt when it is absent.
  std::optional<uint64_t> stored_size(std::string_view sha256_hex) const;

  // Stores content unless an object of the same SHA-256 exists.
  PutResult put(std::span<const std::byte> content);
  // The same when the caller already hashed the content (not re-checked).
  PutResult put(std::string_view sha256_hex, std::span<const std::byte> content);

  // Makes every object put since the last sync durable under its final name. Until then an
  // object may still be waiting under a temporary name (put() batches the fsyncs of up to
  // kMaxPendingObjects objects: one fsync each, issued together, is much cheaper than one
  // fsync per object in turn).
  void sync();

  static constexpr size_t kMaxPendingObjects = 128;
  static constexpr uint64_t kMaxPendingBytes = 64 << 20;

  // Decodes the object into out (replacing its contents) and checks it against its name.
  // Throws Error naming the object file when it is missing, damaged or does not match.
  void get(std::string_view sha256_hex, std::vector<std::byte>& out) const;

  // Reads and checks an object without throwing.
  ObjectCheck check(std::string_view sha256_hex) const;

  // Every object name in the store (for verify and, later, expiry).
  std::vector<std::string> list() const;

 private:
  void ensure_dir(const fs::path& dir);
  void flush_pending();

  struct Pending {
    std::string sha256;
    UniqueFd fd;
    fs::path tmp_path;
    fs::path final_path;
  };

  fs::path dir_;
  std::optional<std::pair<uid_t, gid_t>> owner_;
  std::set<fs::path> dirty_dirs_;
  std::set<fs::path> known_dirs_;
  Lz4FrameEncoder encoder_;
  std::vector<std::byte> frame_;
  uint64_t tmp_counter_ = 0;
  std::vector<Pending> pending_;
  std::map<std::string, uint64_t> pending_names_;  // sha256 -> stored size
  uint64_t pending_bytes_ = 0;
};

}  // namespace walvault
