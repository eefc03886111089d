"""paths.py: one project folder -- $TEMPO_HOME, else the checkout, else the current
directory (an installed package must never write into site-packages)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import tempolab
from tempolab.lab import Lab, plan
from tempolab.paths import ENV_HOME, ProjectPaths, checkout_of, project_paths
from tempolab.runner.driver import RunOptions

REPO = Path(__file__).resolve().parents[1]


def test_a_checkout_is_its_own_project_folder():
    pkg = Path(tempolab.__file__).resolve().parent
    assert checkout_of(pkg) == REPO
    p = ProjectPaths.discover(env={}, cwd=Path("/"))
    assert p.root == REPO and p.results == REPO / "results"
    assert p.playbook("deploy") == REPO / "playbooks" / "deploy.yml" and p.ansible_cfg.is_file()
    assert p.lab_inventory(plan.DEFAULT_NAME) == REPO / "inventory" / "lab" / "hosts.yml"
    assert p.lab_inventory("h10a") == REPO / "inventory" / "lab-h10a" / "hosts.yml"
    assert p.lab_state == plan.STATE_ROOT


def test_installed_package_uses_the_current_directory(tmp_path):
    site = tmp_path / "site-packages" / "tempolab"
    site.mkdir(parents=True)
    assert checkout_of(site) is None
    p = ProjectPaths.discover(env={}, cwd=tmp_path / "work", package_dir=site)
    assert p.root == tmp_path / "work" and p.results == tmp_path / "work" / "results"


def test_tempo_home_wins(tmp_path):
    p = ProjectPaths.discover(env={ENV_HOME: str(tmp_path)}, cwd=Path("/"))
    assert p.root == tmp_path.resolve()


def test_secrets_are_where_the_role_generates_the_key():
    # the role's default is playbook_dir/../.secrets/tempo.key; the playbooks are the
    # project folder's playbooks/, so both name the same file
    defaults = yaml.safe_load((REPO / "roles/tempod/defaults/main.yml").read_text())
    assert defaults["tempod_auth_key_file"] == "{{ playbook_dir | dirname }}/.secrets/tempo.key"
    p = project_paths()
    assert p.auth_key_file == p.playbook("deploy").parent.parent / ".secrets" / "tempo.key"


def test_runner_and_lab_defaults_follow_the_project_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_HOME, str(tmp_path))
    assert RunOptions().results_dir == tmp_path / "results"
    assert RunOptions(results=Path("/x")).results_dir == Path("/x")
    lab = Lab("h10a", root=tmp_path / "state")
    assert lab.inventory_path == tmp_path / "inventory" / "lab-h10a" / "hosts.yml"
    assert Lab("h10a").root == plan.STATE_ROOT


def test_installed_style_cwd_gets_the_results(tmp_path):
    """The package copied out of the checkout (as pip installs it), run from a
    scratch directory: `tempo compare --by-protocol` writes results/ there, not beside
    the package (where the REPO worked out from __file__ used to put it)."""
    site = tmp_path / "site-packages"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "experiments" / "tempolab", site / "tempolab", ignore=ignore)
    shutil.copytree(REPO / "daemon" / "tempod", site / "tempod", ignore=ignore)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(REPO / "tests" / "fixtures" / "20261202-055040-smoke", work / "run")
    env = {k: v for k, v in os.environ.items() if k != ENV_HOME}
    env["PYTHONPATH"] = str(site)
    p = subprocess.run([sys.executable, "-m", "tempolab.cli", "compare", "run", "--by-protocol"],
                       cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = list((work / "results").glob("compare-protocols-*/protocols.md"))
    assert len(out) == 1, p.stdout
    assert not (site / "results").exists() and not (tmp_path / "results").exists()


def _install_like_the_wheel(site: Path) -> None:
    """Copy into `site` what pyproject's packages.find and package-data put in the wheel
    (the venv has no `wheel` to build one): each found package's modules and its data globs."""
    import tomllib

    from setuptools import find_packages
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    find, data = cfg["packages"]["find"], cfg.get("package-data", {})
    for where in find["where"]:
        for pkg in find_packages(REPO / where, include=find["include"], exclude=find.get("exclude", ())):
            src = REPO / where / pkg.replace(".", "/")
            dst = site / pkg.replace(".", "/")
            dst.mkdir(parents=True, exist_ok=True)
            for f in src.glob("*.py"):
                shutil.copy2(f, dst / f.name)
            for pattern in data.get(pkg, ()):
                for f in src.glob(pattern):
                    (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dst / f.relative_to(src))


def test_installed_package_has_the_built_in_suites(tmp_path):
    """An installed tempo finds its built-in suites (the suite loader used to look in
    the checkout's experiments/suites/, which is not package data, so a wheel had none)."""
    site = tmp_path / "site-packages"
    _install_like_the_wheel(site)
    assert not (site / "tempolab" / "testing").exists()  # excluded from the wheel
    checkout = sorted(p.stem for p in (REPO / "experiments/tempolab/suites").glob("*.yaml"))
    assert len(checkout) >= 10
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != ENV_HOME}
    env["PYTHONPATH"] = str(site)
    code = ("import tempolab; from tempolab.runner.suite import builtin_suites, load_suite\n"
            "names = builtin_suites(); [load_suite(n) for n in names]\n"
            "print(tempolab.__file__); print(' '.join(names))")
    p = subprocess.run([sys.executable, "-c", code], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    where, names = p.stdout.splitlines()
    assert Path(where).is_relative_to(site)
    assert names.split() == checkout
