#!/usr/bin/env bash
# Install everything Tempo lab needs on a fresh Debian/Ubuntu machine (as root):
# the lab's system tools and the controller's virtual environment in .venv/.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2 nftables procps psmisc       # the lab: namespaces, bridge, faults
  openssh-server openssh-client         # real sshd per node
  libfaketime faketime                  # drift profiles
  python3 python3-venv                  # nodes run the daemon with the system python
  tshark                                # TSP dissector check
  sntp                                  # a stock NTP client
  gcc libc6-dev                         # roles/chrony builds its timestamp shim on the node
)

# shellcheck source=scripts/apt-missing.sh
. scripts/apt-missing.sh
_no_setuid_dumpcap() {
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
}
apt_install_missing bootstrap _no_setuid_dumpcap "${APT_PACKAGES[@]}"

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import tempod, tempolab, pytest, hypothesis, ansible_collections, boto3, moto.server" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  echo "bootstrap: installing the project and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch .venv/.installed
fi
echo "bootstrap: ready"
