#!/usr/bin/env bash
# The two commands on a fresh machine, by hand (not part of make test), as root:
#   a clean Debian 12 root (debootstrap minbase + python3, python3-venv, make), this commit's
#   files copied in as a clone has them (git archive HEAD), entered with chroot (its own files;
#   this machine's kernel, network, resolver and trusted CAs, and its loopback services such as
#   PostgreSQL), then
#   1. user-run: `make run` as an ordinary user stops at once, naming the one sudo command;
#   2. run:      `make run` as root until the portal answers /login, then Ctrl-C (SIGINT to its
#                process group, as a terminal does): it must stop cleanly (no hard_stop);
#   3. test:     `make test` as root (niced), its last lines quoted.
# Usage: scripts/fresh-machine-check.sh [steps...]   (default: user-run run test)
# FRESH_WORK (default /tmp/multiflexi-fresh) keeps the debootstrap tarball between runs; every
# run starts from a fresh copy of it. DEBIAN_MIRROR overrides deb.debian.org. Logs and a summary
# (result.txt) are left in FRESH_WORK.
set -euo pipefail
WORK=${FRESH_WORK:-/tmp/multiflexi-fresh}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PROJECT=$(cd "$(dirname "$0")/.." && pwd)
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(user-run run test)
root=$WORK/root
result=$WORK/result.txt

[ "$(id -u)" = 0 ] || { echo "fresh-machine-check: run as root (debootstrap, chroot)" >&2; exit 1; }
say() { echo "fresh-machine-check: $*" | tee -a "$result" >&2; }

build_base() {
  [ -s "$WORK/base.tar" ] && return
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  rm -rf "$WORK/base"
  debootstrap --variant=minbase --include=python3,python3-venv,make bookworm "$WORK/base" "$MIRROR"
  tar -C "$WORK/base" -cf "$WORK/base.tar.part" . && mv "$WORK/base.tar.part" "$WORK/base.tar"
  rm -rf "$WORK/base"
}

unmount() {  # everything under the root too: engines' overlays a failed test left behind
  mountpoint -q "$root" 2>/dev/null && umount -R -l "$root" || true
}

fresh_root() {
  unmount
  rm -rf "$root" && mkdir -p "$root" && tar -C "$root" -xf "$WORK/base.tar"
  # A mount point as a container's root is: dockerd remounts / when it unpacks an image.
  mount --bind "$root" "$root"
  # The machine's network settings, nothing else: its resolver and the CAs it trusts (an
  # egress proxy that re-signs TLS, as on the development VMs, would fail every pip download).
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  mount -t proc proc "$root/proc"
  for m in sys dev; do mount --rbind "/$m" "$root/$m" && mount --make-rslave "$root/$m"; done
  mkdir -p "$root/src"
  git -C "$PROJECT" archive HEAD | tar -x -C "$root/src"
}

in_root() {  # a clean environment, as a fresh login would have
  chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME="${HOME_IN:-/root}" LANG=C.UTF-8 TERM=dumb "$@"
}

step_user_run() {
  in_root useradd -m tester
  cp -a "$root/src" "$root/home/tester/src" && in_root chown -R tester: /home/tester/src
  local log=$WORK/user-run.log rc=0
  HOME_IN=/home/tester in_root runuser -u tester -- sh -c 'cd ~/src && make run' >"$log" 2>&1 \
    || rc=$?
  if [ "$rc" != 0 ] && grep -q "sudo sh -c 'apt-get update && apt-get install" "$log" \
    && ! grep -q "failed to find libmagic" "$log"; then
    say "user-run: ok, make run as an ordinary user stopped at once (rc $rc): $(grep -m1 '    sudo' "$log" | sed 's/^ *//')"
  else
    say "user-run: FAILED (rc $rc), see $log"; tail -20 "$log" >&2; return 1
  fi
}

step_run() {
  local port log=$WORK/run.log start pid answered=""
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  start=$(date +%s)
  # Its own session: the group a terminal's Ctrl-C would signal.
  setsid chroot "$root" env -i PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin HOME=/root \
    LANG=C.UTF-8 PORT="$port" PYTHONUNBUFFERED=1 sh -c 'cd /src && exec make run' >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 900); do
    if python3 - "$port" <<'EOF' 2>/dev/null; then answered=1; break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/login", timeout=5).read()
EOF
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  local took=$(($(date +%s) - start))
  kill -INT -- "-$pid" 2>/dev/null || true
  local rc=0
  wait "$pid" || rc=$?
  if [ -n "$answered" ] && ! grep -q "action=hard_stop" "$log"; then
    say "run: ok, portal answered /login ${took} s after make run (venv, install, migrations included); first Ctrl-C: make exited $rc, no hard_stop"
  else
    say "run: FAILED (answered=${answered:-no} after ${took} s, rc $rc), see $log"; tail -30 "$log" >&2
    return 1
  fi
}

step_test() {
  local log=$WORK/test.log rc=0 start
  start=$(date +%s)
  in_root nice -n 10 sh -c 'cd /src && make test' >"$log" 2>&1 || rc=$?
  local summary
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|^=+ .*(passed|failed|error)' "$log" | tail -1)
  if [ "$rc" = 0 ]; then
    say "test: ok, make test exit 0 in $(($(date +%s) - start)) s: ${summary:-see $log}"
  else
    say "test: FAILED (rc $rc after $(($(date +%s) - start)) s): ${summary:-see $log}"
    grep -E '^(FAILED|ERROR) ' "$log" | head -30 | tee -a "$result" >&2 || true
    return 1
  fi
}

mkdir -p "$WORK"
: >"$result"
say "$(date -u +%FT%TZ) commit $(git -C "$PROJECT" rev-parse --short HEAD), steps: ${STEPS[*]}"
build_base
trap unmount EXIT
fresh_root
failed=0
for step in "${STEPS[@]}"; do
  "step_${step//-/_}" || failed=1
done
exit "$failed"
