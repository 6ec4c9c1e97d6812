#!/usr/bin/env bash
# Installs the Debian packages the project needs, only when missing (apt-get, as root).
#   runtime (make run): libmagic1 (python-magic cannot import without it).
#   test (make test):   + libatomic1 (Playwright's driver), chromium (browser tests), procps (ps),
#                       curl and openssl (the README's webhook examples), gcc and libc6-dev (the
#                       LD_PRELOAD isolation test), systemd (systemd-analyze), postgresql-client
#                       (pg_dump, pg_restore: the backup tests), docker.io, podman
#                       and busybox-static (container executor tests); docker-compose and
#                       debootstrap (make test-deploy).
#   bench (make bench): + wrk (bench/events.py's load generator: Python client threads were
#                       the bottleneck, not the server); make test installs it too.
# Not root: stops (exit 1) with the one command to run. SYSTEM_DEPS=skip goes on without the
# test packages (the tests needing them skip); make run cannot go on without libmagic.
set -euo pipefail
what=${1:-runtime}
need=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_cmd() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

have_lib libmagic.so.1 || need+=(libmagic1)
if [ "$what" = test ]; then
  have_lib libatomic.so.1 || need+=(libatomic1)
  have_cmd chromium || need+=(chromium)
  have_cmd ps || need+=(procps)
  have_cmd curl || need+=(curl)
  have_cmd openssl || need+=(openssl)
  have_cmd gcc || need+=(gcc)
  [ -e /usr/include/stdio.h ] || need+=(libc6-dev)
  have_cmd systemd-analyze || need+=(systemd)
  have_cmd pg_dump || need+=(postgresql-client)  # multiflexi backup of PostgreSQL
  # Container engines for the docker/podman executor tests (tests/engines.py starts private ones).
  have_cmd dockerd || need+=(docker.io)
  have_cmd podman || need+=(podman)
  have_pkg busybox-static || need+=(busybox-static)
  # The deployment test: compose (classic 1.29) and a base image made with debootstrap.
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v debootstrap >/dev/null || need+=(debootstrap)
fi
if [ "$what" = test ] || [ "$what" = bench ]; then
  have_cmd wrk || need+=(wrk)
fi

if [ ${#need[@]} -eq 0 ]; then exit 0; fi
for_what="make run"
[ "$what" = test ] && for_what="make test"
[ "$what" = bench ] && for_what="make bench"
if [ "$what" = test ] && [ "${SYSTEM_DEPS:-}" = skip ]; then
  echo "system-deps: SYSTEM_DEPS=skip: going on without ${need[*]} (tests needing them skip)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: $for_what needs these Debian packages (or your system's equivalents): ${need[*]}" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: $for_what needs packages that are not installed: ${need[*]}" >&2
  echo "system-deps: run this once, then $for_what again:" >&2
  echo "    sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends ${need[*]}'" >&2
  [ "$what" = test ] && echo "system-deps: (or SYSTEM_DEPS=skip $for_what: tests needing them skip)" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
