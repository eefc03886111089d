#!/usr/bin/env python3
"""Build the project wheel on the controller, once per source state.

Owns the decision "do the sources differ from the last build?": it hashes the
project's packaging files and every file under the package folders (path and
content, sorted; caches and build output skipped) and builds with ``pip wheel`` only
when ``<cache>/<hash>/`` holds no wheel yet.  Prints one JSON object:
``{"wheel": path, "sha256": source hash, "built": bool}`` -- Ansible reports
``changed`` only when ``built`` is true, so re-deploys of unchanged sources are fast
(a hash over ~100 small files, a few ms).  It must not know about hosts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGING = ("pyproject.toml", "setup.cfg", "setup.py", "README.md")
PACKAGE_DIRS = ("daemon", "experiments/tempolab")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info")


def source_files(root: Path) -> list[Path]:
    files = [root / p for p in PACKAGING if (root / p).is_file()]
    for top in PACKAGE_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / top):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
            files += [Path(dirpath) / f for f in sorted(filenames) if not f.endswith(SKIP_SUFFIXES)]
    return files


def source_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in source_files(root):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def build(root: Path, cache: Path) -> dict:
    digest = source_hash(root)
    out = cache / digest
    existing = sorted(out.glob("*.whl")) if out.is_dir() else []
    if existing:
        return {"wheel": str(existing[0]), "sha256": digest, "built": False}
    cache.mkdir(parents=True, exist_ok=True)
    # build into a temporary folder and rename: a concurrent or interrupted build
    # never leaves a half-written wheel where the next run would trust it
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".build-"))
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp), str(root)],
            check=True, stdout=sys.stderr,
        )
        wheels = sorted(tmp.glob("*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"build_wheel: expected one wheel, pip made {[w.name for w in wheels]}")
        try:
            tmp.rename(out)
        except OSError:
            if not any(out.glob("*.whl")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"wheel": str(sorted(out.glob("*.whl"))[0]), "sha256": digest, "built": True}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, type=Path, help="project checkout (has pyproject.toml)")
    ap.add_argument("--cache", required=True, type=Path, help="wheel cache folder")
    args = ap.parse_args()
    if not (args.source / "pyproject.toml").is_file():
        print(f"build_wheel: {args.source} has no pyproject.toml", file=sys.stderr)
        return 2
    print(json.dumps(build(args.source.resolve(), args.cache)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
