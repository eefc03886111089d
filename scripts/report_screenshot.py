"""Open RUN_DIR/report.html in headless Chromium, check it, save a screenshot.

    .venv/bin/python scripts/report_screenshot.py results/example

Prints the images found, broken images and console errors, writes
RUN_DIR/figures/report-screenshot.png; exit 1 when an image is broken or an error was
logged.  Needs Debian's chromium and websocket-client (scripts/test.sh installs both).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from tempolab.analysis.browser import check_page  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    run = Path(argv[0])
    page = run / "report.html" if run.is_dir() else run
    shot = page.parent / "figures" / "report-screenshot.png"
    check = check_page(page, screenshot=shot)
    print(f"{page}: {len(check.images)} images, {len(check.broken_images)} broken, "
          f"{len(check.console_errors)} console errors")
    for e in check.console_errors:
        print(f"  {e}")
    print(f"screenshot: {shot}")
    return 1 if check.broken_images or check.console_errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
