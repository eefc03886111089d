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

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import tempod, tempolab, pytest, hypothesis, ansible_collections" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  echo "bootstrap: installing the project and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch .venv/.installed
fi
echo "bootstrap: ready"
