#include "core/timeline_history.h"

#include "core/error.h"
#include "core/fs.h"
#include "core/repository.h"

namespace walvault {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits off the next field separated by whitespace (PostgreSQL's own reader uses sscanf).
std::string_view next_field(std::string_view& s) {
  s = trim(s);
  size_t end = 0;
  while (end < s.size() && s[end] != ' ' && s[end] != '\t') ++end;
  std::string_view field = s.substr(0, end);
  s.remove_prefix(end);
  return field;
}

}  // namespace

std::vector<TimelineSwitch> parse_timeline_history(std::string_view text, TimelineId tli,
                                                   const std::string& what_for_errors) {
  std::vector<TimelineSwitch> out;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    std::string_view rest = trim(line);
    if (rest.empty() || rest.front() == '#') continue;
    auto bad = [&](const std::string& why) {
      return Error(what_for_errors + " line " + std::to_string(line_no) + " is invalid: " + why,
                   "the file should be PostgreSQL's own history file, kept verbatim");
    };
    std::string_view tli_text = next_field(rest);
    std::string_view lsn_text = next_field(rest);
    auto parent = parse_u32(tli_text);
    if (!parent || *parent == 0) throw bad("\"" + std::string(tli_text) + "\" is not a timeline");
    auto lsn = Lsn::parse(lsn_text);
    if (!lsn) throw bad("\"" + std::string(lsn_text) + "\" is not an LSN");
    TimelineSwitch sw{TimelineId(*parent), *lsn, std::string(trim(rest))};
    if (!out.empty()) {
      if (sw.parent <= out.back().parent) throw bad("timeline IDs must increase");
      if (sw.switch_lsn < out.back().switch_lsn) throw bad("switch points must not go backwards");
    }
    if (sw.parent >= tli) {
      throw bad("timeline " + std::to_string(sw.parent.value) +
                " cannot be an ancestor of timeline " + std::to_string(tli.value));
    }
    out.push_back(std::move(sw));
  }
  return out;
}

std::vector<TimelineSwitch> check_timeline_history_file(std::string_view text, TimelineId tli,
                                                        const std::string& what_for_errors) {
  const std::string hint = "the file should be PostgreSQL's own history file, kept verbatim";
  if (text.empty()) throw Error(what_for_errors + " is empty", hint);
  if (text.back() != '\n') {
    throw Error(what_for_errors + " is truncated (its last line does not end)", hint);
  }
  auto switches = parse_timeline_history(text, tli, what_for_errors);
  if (switches.empty()) throw Error(what_for_errors + " names no parent timeline", hint);
  return switches;
}

TimelineHistory::TimelineHistory(TimelineId tli) {
  spans_.push_back({tli, Lsn(0), std::nullopt});
}

TimelineHistory::TimelineHistory(TimelineId tli, const std::vector<TimelineSwitch>& switches) {
  Lsn begin(0);
  for (const auto& sw : switches) {
    spans_.push_back({sw.parent, begin, sw.switch_lsn});
    begin = sw.switch_lsn;
  }
  spans_.push_back({tli, begin, std::nullopt});
}

bool TimelineHistory::contains(TimelineId tli) const {
  return span_of(tli).has_value();
}

std::optional<TimelineSpan> TimelineHistory::span_of(TimelineId tli) const {
  for (const auto& s : spans_) {
    if (s.timeline == tli) return s;
  }
  return std::nullopt;
}

TimelineId TimelineHistory::timeline_of(Lsn lsn) const {
  for (const auto& s : spans_) {
    if (lsn >= s.begin && (!s.end || lsn < *s.end)) return s.timeline;
  }
  // Only reachable with a switch point of zero width at the very end; the target owns it.
  return target();
}

TimelineId TimelineHistory::timeline_of_segment(SegmentNo segno,
                                                uint64_t segment_size_bytes) const {
  for (auto it = spans_.rbegin(); it != spans_.rend(); ++it) {
    if (segment_of(it->begin, segment_size_bytes) <= segno) return it->timeline;
  }
  return spans_.front().timeline;
}

std::optional<TimelineId> TimelineHistory::parent_of(TimelineId tli) const {
  for (size_t i = 1; i < spans_.size(); ++i) {
    if (spans_[i].timeline == tli) return spans_[i - 1].timeline;
  }
  return std::nullopt;
}

LoadedHistory load_timeline_history(const Repository& repo, TimelineId tli) {
  if (tli.value <= 1) return {TimelineHistory(tli), false};
  const fs::path path = repo.history_path(tli);
  auto text = read_file_if_exists(path);
  if (!text) return {TimelineHistory(tli), false};
  return {TimelineHistory(tli, parse_timeline_history(*text, tli, "\"" + path.string() + "\"")),
          true};
}

}  // namespace walvault
