#!/usr/bin/env bash
# Debian packages the real-node tier needs (e2e/cluster/node.py, images.py), installed when one
# is missing: runc's seccomp support (cgo), netfilter tools, and the image builders (buildah
# builds the Dockerfiles, mmdebstrap makes their base from Debian packages, skopeo pushes).
set -euo pipefail
PACKAGES=(libseccomp-dev pkg-config iptables ipset nftables conntrack buildah crun mmdebstrap skopeo uidmap)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "node-packages: missing ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "==> apt-get install ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
