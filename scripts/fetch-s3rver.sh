#!/usr/bin/env bash
# Fetches s3rver (an S3-compatible server written in Node.js, from the npm registry, pinned)
# for the tests of walvault's S3 client: it checks SigV4 signatures, so a wrong signature is
# refused as AWS would refuse it.
#
#   scripts/fetch-s3rver.sh               install (idempotent) and print the s3rver program
#   scripts/fetch-s3rver.sh --print-dir   print the cache directory and exit
#
# Cache: $WALVAULT_S3RVER_CACHE, else /var/cache/walvault/s3rver as root, else
# ~/.cache/walvault/s3rver.
set -euo pipefail

version=3.7.1
if [[ -n ${WALVAULT_S3RVER_CACHE:-} ]]; then
  cache=$WALVAULT_S3RVER_CACHE
elif [[ $(id -u) -eq 0 ]]; then
  cache=/var/cache/walvault/s3rver
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/walvault/s3rver
fi
if [[ ${1:-} == --print-dir ]]; then
  echo "$cache"
  exit 0
fi

die() {
  echo "walvault: error: $1" >&2
  [[ -n ${2:-} ]] && echo "HINT: $2" >&2
  exit 1
}
command -v npm >/dev/null || die "npm is needed to fetch s3rver" "install Node.js and npm"

dir=$cache/$version
bin=$dir/node_modules/.bin/s3rver
if [[ ! -x $bin ]]; then
  umask 022
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm install --silent --no-audit --no-fund "s3rver@$version" >/dev/null) ||
    die "could not install s3rver@$version from the npm registry" \
      "check the network and the npm configuration (npm config get registry)"
  chmod -R a+rX "$work"
  rm -rf "$dir"
  mv "$work" "$dir"
  trap - EXIT
fi
echo "$bin"
