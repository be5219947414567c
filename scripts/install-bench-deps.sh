#!/usr/bin/env bash
# Installs what bench/compare needs besides scripts/install-deps.sh: the tools walvault is
# compared with (pgBackRest; pg_receivewal and pg_basebackup come with postgresql-15), fio
# for the disk's physical limit, and GNU time for peak RSS and CPU seconds. Only for
# benchmarks: building and testing walvault needs none of these.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail

"$(dirname "$0")/install-deps.sh"

packages=(pgbackrest fio time)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "walvault: error: missing Debian packages: ${missing[*]}" >&2
  echo "HINT: run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
