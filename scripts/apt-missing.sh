# Sourced by scripts/bootstrap.sh and scripts/bootstrap-vm.sh: install the Debian packages
# of a list that are not installed yet (as root), or say which are missing and exit 1.
#   apt_install_missing TAG PRE_INSTALL_FUNCTION PKG...
# PRE_INSTALL_FUNCTION (may be ":") runs as root just before apt-get, only when something
# is missing (debconf answers, policy-rc.d, ...).
apt_install_missing() {
  local tag=$1 pre=$2 p
  shift 2
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$tag: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "$tag: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "$pre"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
