#!/usr/bin/env bash
# Installs the Debian packages the test suite uses, only those missing (idempotent, fast when
# everything is there). As non-root it lists what is missing; the tests that need it then skip.
set -euo pipefail

PACKAGES=(
  prometheus            # promtool check metrics; a real Prometheus for end-to-end scrapes
  sysstat               # iostat, the reference for the disk latency figures
  fio                   # real I/O load on loop devices
  smartmontools         # smartctl 7.x, run for real on this machine's disks
  util-linux            # losetup, mount
  e2fsprogs             # mkfs.ext4
  xfsprogs              # mkfs.xfs
  btrfs-progs           # mkfs.btrfs, btrfs filesystem show: btrfs error stats on loop devices
  procps                # ps, pgrep
  faketime              # libfaketime: the agent under a wall clock that jumps (clock fault tests)
  systemd-container     # systemd-nspawn: a real systemd 252 for backup-pause and unit tests
  strace                # the order of WAL compression's syscalls, as the kernel saw them
  gcc                   # test helpers in C (the renameat2 racer, crashing programs)
  libc6-dev
  passwd                # useradd/userdel: real unprivileged users owning the WAL directory
  dpkg-dev              # dpkg-shlibdeps: the Debian package's Depends (npm run package)
  binutils              # strip: the packaged node and native modules
  lintian               # the package's policy check
  debootstrap           # a minimal Debian 12 to install the package on (test/deb-package.test.ts)
  bpftrace              # the bio collector's eBPF tier, run for real on loop devices
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: not root; missing Debian packages: ${missing[*]} (tests that need them will skip)" >&2
  exit 0
fi

echo "test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages with services (prometheus) must not try to start them on a host without systemd.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "test-deps: done" >&2
