#!/usr/bin/env bash
# Reference tools the benchmarks compare against (idempotent; as root only).
set -euo pipefail
need=()
for p in prometheus-node-exporter sysstat fio bpftrace; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then echo "bench-deps: not root; missing ${need[*]} (their comparisons are skipped)" >&2; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d; created=0
[ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1; }
trap '[ "$created" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
