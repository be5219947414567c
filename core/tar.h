#pragma once
// Tar archives as a streaming stage: TarReader takes bytes in any chunking and hands the
// members, in order, to a TarSink (header, content chunks, end), like the astreamer chain
// of pg_basebackup. Nothing is buffered but one header block, so an archive of any size
// streams through a constant amount of memory.
//
// Formats read: POSIX ustar (with the prefix field), the old V7 layout, GNU long names and
// long link targets ('L' / 'K' members), pax extended headers ('x'; 'g' is read and
// ignored), base-256 numbers. PostgreSQL emits plain ustar; the rest is what other tar
// writers produce for long names, so archives made by hand or by GNU tar read too.
//
// Every member name is checked before a sink sees it: relative, no ".." component
// (safe_tar_path). Device nodes and FIFOs are refused: a data directory has none.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace walvault {

enum class TarEntryType { file, directory, symlink, hardlink };
std::string_view to_string(TarEntryType t);

struct TarEntry {
  std::string path;  // normalised (safe_tar_path): relative, no "./" prefix, no trailing '/'
  TarEntryType type = TarEntryType::file;
  uint32_t mode = 0;        // permission bits as stored (07777 at most)
  uint64_t size = 0;        // content bytes; 0 for everything but files
  std::string link_target;  // symlink: as stored; hard link: a normalised member path
  int64_t mtime = 0;        // seconds since 1970
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// Receives the members of an archive. Calls come in the order
// begin_entry, entry_data*, end_entry per member, then end_archive once.
class TarSink {
 public:
  virtual ~TarSink() = default;
  virtual void begin_entry(const TarEntry& entry) = 0;
  virtual void entry_data(std::span<const std::byte> data) = 0;
  virtual void end_entry() = 0;
  virtual void end_archive() {}
};

class TarReader {
 public:
  static constexpr size_t kBlockBytes = 512;
  // Limit on one long name / pax header: anything larger is a damaged archive, not a name.
  static constexpr size_t kMaxExtendedHeaderBytes = 1 << 20;

  // archive_name only appears in error messages.
  TarReader(TarSink& sink, std::string archive_name);

  // Parses data; throws Error on a malformed archive (naming the archive and the member).
  void feed(std::span<const std::byte> data);
  // The input has ended: throws Error when the archive is truncated, i.e. it ends anywhere
  // but after its end-of-archive marker (PostgreSQL 15 terminates its tar streams).
  void finish();

  bool ended() const { return state_ == State::ended; }
  uint64_t members() const { return members_; }
  uint64_t content_bytes() const { return content_bytes_; }

 private:
  enum class State { header, data, padding, extended, ended };

  void on_header_block();
  void start_member(TarEntry entry);
  void finish_extended();
  void apply_pax(std::string_view records);
  [[noreturn]] void fail(const std::string& what) const;

  TarSink& sink_;
  std::string archive_name_;
  State state_ = State::header;
  std::byte block_[kBlockBytes];
  size_t block_fill_ = 0;
  uint64_t remaining_ = 0;  // content (or extended header) bytes left in the current member
  uint64_t padding_ = 0;    // padding bytes left after it
  bool saw_zero_block_ = false;

  // Extended header being collected ('L', 'K', 'x', 'g') and what it set for the next member.
  char extended_type_ = 0;
  std::string extended_;
  std::string next_path_, next_link_;
  bool has_next_path_ = false, has_next_link_ = false, has_next_size_ = false;
  uint64_t next_size_ = 0;
  bool has_next_mtime_ = false;
  int64_t next_mtime_ = 0;

  std::string current_path_;  // for error messages
  uint64_t members_ = 0;
  uint64_t content_bytes_ = 0;
};

// Normalises a member name ("./a//b/" -> "a/b", "./" -> "") and throws Error for names
// that would escape the extraction directory: absolute, a ".." component, or a NUL byte.
std::string safe_tar_path(std::string_view name);

// Writing, for snapshots and tests: the header block(s) of one member (a pax header first
// when the name, link target or size does not fit ustar), its padding, the end marker.
std::string tar_member_header(const TarEntry& entry);
size_t tar_padding_bytes(uint64_t content_bytes);
std::string tar_end_of_archive();  // two zero blocks

}  // namespace walvault
