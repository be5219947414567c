#!/usr/bin/env bash
# A throwaway S3 endpoint for tests: one Ceph monitor, one OSD on memstore (in RAM, no block
# device) and the RADOS Gateway on 127.0.0.1, all in DIR, no systemd. RGW checks SigV4
# signatures, payload hashes, clock skew, multipart and If-None-Match like AWS.
#
#   scripts/rgw.sh start DIR PORT   start everything; prints "ACCESS_KEY SECRET_KEY" on the
#                                   last line (a user made for the test)
#   scripts/rgw.sh stop DIR         stop every daemon started in DIR (by the PIDs it recorded)
#
# With WALVAULT_RGW_TLS_PORT, WALVAULT_RGW_CERT and WALVAULT_RGW_KEY set, the gateway also
# serves https on that port with that certificate.
#
# Packages: ceph-mon ceph-osd radosgw ceph-common (scripts/install-deps.sh installs them).
set -euo pipefail

die() {
  echo "walvault: error: $1" >&2
  [[ -n ${2:-} ]] && echo "HINT: $2" >&2
  exit 1
}

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || die "usage: scripts/rgw.sh start DIR PORT | stop DIR"

stop_all() {
  local f pid i
  for f in "$dir"/run/*.daemon-pid; do
    [[ -e $f ]] || continue
    pid=$(cat "$f")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

if [[ $cmd == stop ]]; then
  stop_all
  exit 0
fi
[[ $cmd == start ]] || die "unknown command \"$cmd\"" "use start or stop"
port=${3:-}
[[ $port =~ ^[0-9]+$ ]] || die "scripts/rgw.sh start needs DIR and PORT"
for p in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool; do
  command -v "$p" >/dev/null || die "$p is not installed" "run scripts/install-deps.sh (Debian: ceph-mon ceph-osd radosgw ceph-common)"
done

mkdir -p "$dir"/{run,log,mon,osd}
dir=$(cd "$dir" && pwd)
mon_port=$((port + 1))
fsid=$(cat /proc/sys/kernel/random/uuid)
tls=
if [[ -n ${WALVAULT_RGW_TLS_PORT:-} ]]; then
  tls=" ssl_endpoint=127.0.0.1:$WALVAULT_RGW_TLS_PORT ssl_certificate=$WALVAULT_RGW_CERT ssl_private_key=$WALVAULT_RGW_KEY"
fi
conf=$dir/ceph.conf
cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms bind ipv4 = true
ms bind ipv6 = false
public addr = 127.0.0.1
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
keyring = $dir/keyring
osd objectstore = memstore
memstore device bytes = ${WALVAULT_RGW_MEMSTORE_BYTES:-2147483648}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon data avail warn = 1
mon data avail crit = 0
mon max pg per osd = 1000
osd data = $dir/osd/\$cluster-\$id
mon data = $dir/mon/\$cluster-\$id
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$port$tls
rgw dns name = 127.0.0.1
rgw data = $dir/rgw
CONF
C=(-c "$conf")
start_daemon() { # NAME CMD...
  local name=$1
  shift
  setsid "$@" >"$dir/log/$name.out" 2>&1 </dev/null &
  echo $! >"$dir/run/$name.daemon-pid"
}
trap 'rc=$?; ((rc)) && stop_all; exit $rc' EXIT

ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
  --cap mgr 'allow *' >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" >"$dir/log/mon-mkfs.out" 2>&1 ||
  die "ceph-mon --mkfs failed (see $dir/log/mon-mkfs.out)"
start_daemon mon ceph-mon "${C[@]}" -f -i a
for ((i = 0; i < 300; i++)); do
  ceph "${C[@]}" --connect-timeout 2 status >/dev/null 2>&1 && break
  sleep 0.2
done
ceph "${C[@]}" --connect-timeout 5 status >/dev/null 2>&1 || die "the Ceph monitor did not start (see $dir/log)"

osd_id=$(ceph "${C[@]}" osd create)
mkdir -p "$dir/osd/ceph-$osd_id"
ceph-osd "${C[@]}" -i "$osd_id" --mkfs >"$dir/log/osd-mkfs.out" 2>&1 ||
  die "ceph-osd --mkfs failed (see $dir/log/osd-mkfs.out)"
start_daemon osd ceph-osd "${C[@]}" -f -i "$osd_id"
for ((i = 0; i < 300; i++)); do
  ceph "${C[@]}" osd stat 2>/dev/null | grep -q '1 up' && break
  sleep 0.2
done
ceph "${C[@]}" osd stat 2>/dev/null | grep -q '1 up' || die "the OSD did not come up (see $dir/log)"

start_daemon rgw radosgw "${C[@]}" -f -n client.rgw
for ((i = 0; i < 600; i++)); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.2
done
curl -s -o /dev/null "http://127.0.0.1:$port/" || die "the RADOS Gateway did not answer on port $port (see $dir/log)"

access=WALVAULTTEST$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
secret=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
radosgw-admin "${C[@]}" user create --uid walvault-test --display-name "walvault test" \
  --access-key "$access" --secret "$secret" >/dev/null 2>"$dir/log/user.err" ||
  die "radosgw-admin could not create the test user (see $dir/log/user.err)"
trap - EXIT
echo "$access $secret"
