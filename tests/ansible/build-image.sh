#!/usr/bin/env bash
# Build the local systemd test image the molecule scenarios boot (no container registry is reachable).
#
# Why debootstrap: the only reachable archive is Debian's, so the image is Debian bookworm bootstrapped
# from it and imported into podman's local storage. The production hosts run Ubuntu; the roles keep to
# what both share (apt, systemd). Packages a cloud image already has (sshd, sudo, python3-apt, curl) are
# baked in so each converge installs only what the roles add.
#
# Usage:  tests/ansible/build-image.sh [--force]      (about 1 minute, ~350 MB; needs root,
#         apt-get install -y podman runc debootstrap)
set -euo pipefail

IMAGE="${BRAIN_TEST_IMAGE:-localhost/brain-test:bookworm}"
# the Debian archive this machine's apt uses (deb822 .sources or one-line .list), never a hard-coded host
apt_mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1)
  [ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' | grep -v security | head -n 1)
  [ -n "$uri" ] || { echo "no Debian archive found in /etc/apt/sources.list*: set DEBIAN_MIRROR" >&2; exit 1; }
  echo "$uri"
}
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror)}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"

# .deb caches the scenarios mount, so a second run does not fetch every package again. One
# apt cache per instance name: apt locks its archive directory, and scenarios may run at once.
for instance in common-test brain-test ollama-test wg-brain wg-gpu collectors-test; do
  mkdir -p "/var/cache/brain-molecule/apt/$instance"
done

if [[ "${1:-}" != "--force" ]] && podman image exists "$IMAGE"; then
  echo "image $IMAGE already present (use --force to rebuild)"
  exit 0
fi
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y podman runc debootstrap" >&2; exit 1; }
done

ROOTFS="$(mktemp -d /var/tmp/brain-rootfs.XXXXXX)"
cleanup() {
  # debootstrap mounts /proc and /sys inside the rootfs; never delete through a live mount
  grep -o " $ROOTFS[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT

debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,iputils-ping,ca-certificates,curl,openssh-server,procps,cron \
  bookworm "$ROOTFS" "$MIRROR"

# A container has no console to log in on and no real disks to check.
chroot "$ROOTFS" systemctl mask getty@tty1.service serial-getty@ttyS0.service console-getty.service \
  systemd-remount-fs.service systemd-firstboot.service >/dev/null
echo "brain-test" > "$ROOTFS/etc/hostname"
# Trust the same extra CAs as the building machine: where HTTPS egress (PyPI) passes through an
# intercepting proxy, pip inside the instances needs its CA just as pip on the host does.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
  chroot "$ROOTFS" update-ca-certificates >/dev/null
fi
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb

tar -C "$ROOTFS" -c . | podman import --change 'CMD ["/sbin/init"]' - "$IMAGE"
echo "built $IMAGE"
