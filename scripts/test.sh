#!/usr/bin/env bash
# The test suite. Exit code 5 (no tests collected) is a failure, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
# The browser tests (tests/test_report_browser.py) open the report in Debian's headless
# Chromium; it is installed here, for the test suite only, so `tempo demo` stays fast.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test.sh: installing chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium >/tmp/tempo-chromium-install.log 2>&1 \
    || { apt-get -o DPkg::Lock::Timeout=300 update -q >>/tmp/tempo-chromium-install.log 2>&1 \
         && apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium >>/tmp/tempo-chromium-install.log 2>&1; } \
    || echo "test.sh: could not install chromium (see /tmp/tempo-chromium-install.log)" >&2
fi
# pytest's exit code, with 5 (nothing collected) turned into a failure
pytest_rc() {
  if [ "$1" -eq 5 ]; then echo "test.sh: pytest collected no tests${2:+ ($2)}" >&2; return 1; fi
  return "$1"
}

if [ "$#" -gt 0 ] || [ "${TEMPO_TEST_SERIAL:-0}" = 1 ]; then
  .venv/bin/python -m pytest "$@"
  pytest_rc $? "$*"
  exit $?
fi

# The whole suite runs as two streams side by side: the real-VM test (marker vm, 12-14
# minutes with the box cached, mostly TCG guests booting and Ansible waiting on them)
# beside everything else (25 minutes beside it, 19-20 alone, mostly lab trials waiting on
# real time). Serial, the two took 31 minutes on a quiet machine and 42 at load 6-11;
# TEMPO_TEST_SERIAL=1 runs them one after the other.
# They share nothing: the VM test owns the netns tvm and its libvirtd, no other test
# touches them. The VM stream's output is shown when both are done.
vm_log=$(mktemp /tmp/tempo-vm-tests.XXXXXX)
# (env --default-signal: a background job of a non-interactive shell starts with SIGINT
# ignored, and Python would then never raise KeyboardInterrupt for the trap below)
env --default-signal=INT .venv/bin/python -m pytest -m vm -p no:cacheprovider >"$vm_log" 2>&1 &
vm_pid=$!
echo "test.sh: the VM tests run beside the others; their log: $vm_log"
# an interrupted test run stops the VM stream too (its own cleanup then removes the VMs)
trap 'kill -INT "$vm_pid" 2>/dev/null; wait "$vm_pid"; cat "$vm_log"; exit 130' INT TERM
.venv/bin/python -m pytest -m "not vm"
pytest_rc $? "not vm"
rc_main=$?
echo "test.sh: waiting for the VM tests (log: $vm_log)"
wait "$vm_pid"
pytest_rc $? "vm"
rc_vm=$?
trap - INT TERM
echo "================ VM tests (tests marked vm) ================"
cat "$vm_log"
echo "test.sh: not vm -> exit $rc_main; vm -> exit $rc_vm"
[ "$rc_main" -eq 0 ] && [ "$rc_vm" -eq 0 ]
