#pragma once
// File-system helpers with the durability rules of the repository: a file becomes visible
// under its final name only when complete and durable (temp -> fsync -> rename -> fsync dir).
// Everything walvault creates is 0600 (files) / 0700 (directories).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/unique_fd.h"

namespace walvault {

namespace fs = std::filesystem;

constexpr mode_t kFileMode = 0600;
constexpr mode_t kDirMode = 0700;

UniqueFd open_or_throw(const fs::path& path, int flags, mode_t mode = kFileMode);

// Creates the directory and its missing parents (mode 0700), fsyncing each new entry's parent.
void make_dirs(const fs::path& dir);

void fsync_fd(int fd, const fs::path& path_for_errors);
void fsync_dir(const fs::path& dir);

// Writes all bytes at the current position, retrying short writes and EINTR.
void write_all(int fd, std::span<const std::byte> data, const fs::path& path_for_errors);
void pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset,
                const fs::path& path_for_errors);

// temp file in the same directory -> write -> fsync -> rename -> fsync dir.
void write_file_durable(const fs::path& path, std::string_view contents);
// rename + fsync of the directory (or both directories).
void rename_durable(const fs::path& from, const fs::path& to);

std::string read_file(const fs::path& path);
std::optional<std::string> read_file_if_exists(const fs::path& path);

// True when the path is absent, or a directory with no entries.
bool is_absent_or_empty_dir(const fs::path& path);

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace walvault
