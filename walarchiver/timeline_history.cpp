#include "walarchiver/timeline_history.h"

#include <string>

#include "core/error.h"

namespace walvault {

std::vector<TimelineSwitch> parse_timeline_history(std::string_view content) {
  std::vector<TimelineSwitch> out;
  while (!content.empty()) {
    const size_t eol = content.find('\n');
    std::string_view line = content.substr(0, eol);
    content = eol == std::string_view::npos ? std::string_view{} : content.substr(eol + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    const size_t tab1 = line.find_first_of(" \t");
    if (tab1 == std::string_view::npos) throw Error("malformed timeline history line: " + std::string(line));
    std::string_view rest = line.substr(tab1);
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    const size_t tab2 = rest.find_first_of(" \t");
    auto tli = parse_u32(line.substr(0, tab1));
    auto lsn = Lsn::parse(rest.substr(0, tab2));
    if (!tli || !lsn) throw Error("malformed timeline history line: " + std::string(line));
    out.push_back({TimelineId(*tli), *lsn});
  }
  return out;
}

std::optional<Lsn> timeline_end(const std::vector<TimelineSwitch>& history, TimelineId ancestor) {
  for (const auto& s : history) {
    if (s.timeline == ancestor) return s.end;
  }
  return std::nullopt;
}

std::optional<TimelineId> child_timeline(const std::vector<TimelineSwitch>& history,
                                         TimelineId ancestor, TimelineId newest) {
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i].timeline == ancestor) {
      return i + 1 < history.size() ? history[i + 1].timeline : newest;
    }
  }
  return std::nullopt;
}

}  // namespace walvault
