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
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
