#!/usr/bin/env bash
# Installs Debian packages the project needs, only when missing and only as root.
# runtime: libmagic (python-magic). test: + chromium (browser tests), docker.io, podman and
# busybox-static (container executor tests), systemd, docker-compose and debootstrap (deploy test).
set -euo pipefail
what=${1:-runtime}
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

for p in libmagic1; do have_pkg "$p" || need+=("$p"); done
if [ "$what" = test ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v systemd-analyze >/dev/null || need+=(systemd)
  # Container engines for the docker/podman executor tests (tests/engines.py starts private ones).
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v podman >/dev/null || need+=(podman)
  have_pkg busybox-static || need+=(busybox-static)
  # The deployment test: compose (classic 1.29) and a base image made with debootstrap.
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v debootstrap >/dev/null || need+=(debootstrap)
fi

if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: please install: ${need[*]} (no apt-get here)" >&2; exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; please install: ${need[*]} (tests needing them will skip)" >&2; exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
