#!/usr/bin/env bash
# Installs the system packages the project needs (MariaDB server, etcd,
# Prometheus for test/observe and ops/prometheus, Chromium for the page's
# test, test/runtime/ui.test.ts) when
# they are missing; with arguments, only those named (spin, gcc: the SPIN
# column of npm run bench:checker). Needs root (apt-get); prints the command
# to run otherwise.
# Nothing is started here: the project starts its own instances on free ports.
set -euo pipefail

need=()
if [ $# -gt 0 ]; then
  # Named packages only (e.g. `spin gcc` for npm run bench:checker's SPIN column): each one whose command is missing.
  for pkg in "$@"; do
    case "$pkg" in
      spin|gcc) command -v "$pkg" >/dev/null 2>&1 || need+=("$pkg") ;;
      *) echo "install-system-deps.sh: unknown package '$pkg' (named packages: spin, gcc)" >&2; exit 2 ;;
    esac
  done
else
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need+=(prometheus)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ "${WITH_SPIN:-0}" = 1 ]; then command -v spin >/dev/null 2>&1 || need+=(spin); fi
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]}" >&2
  echo "run as root: apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
echo "installed: ${need[*]}"
