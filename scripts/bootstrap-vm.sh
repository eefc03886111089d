#!/usr/bin/env bash
# Install what real VMs need on a fresh Debian machine (as root): QEMU (TCG), libvirt,
# Vagrant with vagrant-libvirt, mmdebstrap for the offline box, dnsmasq for the
# management network's DHCP, netcat for the SSH ProxyCommand into the VM namespace.
# Called by .ci/run; kept apart from scripts/bootstrap.sh so the lab's install stays fast.
# Safe to run again: it only installs what is missing.
set -euo pipefail

APT_PACKAGES=(
  qemu-system-x86 qemu-utils            # guests under TCG; qemu-img for the box
  libvirt-daemon-system libvirt-clients # libvirtd/virtlogd (started inside the VM netns)
  dnsmasq-base                          # libvirt's DHCP on the management network
  vagrant vagrant-libvirt               # Debian's Vagrant 2.3 + the libvirt provider
  mmdebstrap e2fsprogs                  # the box, from Debian's archive only
  netcat-openbsd                        # ssh ProxyCommand through `ip netns exec`
  libfaketime                           # kernel clock mode: the qemu process's rate
)

# shellcheck source=scripts/apt-missing.sh
. "$(dirname "$0")/apt-missing.sh"
_no_service_starts() {
  # no init system here: package scripts must not try to start libvirtd on the host
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
}
apt_install_missing bootstrap-vm _no_service_starts "${APT_PACKAGES[@]}"
# libvirt's stock "default" NAT network would start inside the VM namespace at every
# libvirtd start; the VM lab defines its own isolated network instead
rm -f /etc/libvirt/qemu/networks/autostart/default.xml
echo "bootstrap-vm: ready"
