"""Real VMs end to end: box, 3 guests under QEMU/TCG, deploy, smoke suite, report, down.

Builds (or reuses, by recipe hash) the Debian box, boots 3 guests with
``VmLab("tvm").up(3)`` (libvirtd inside the netns ``tvm``), runs ``tempo run smoke
--provider vagrant`` (the runner deploys with the same playbooks as on the lab, the
observer reads each guest over NTP through the namespace), checks a second deploy
changes nothing, writes the report, and tears everything down even when a step fails:
no domain, network, daemon or namespace is left.  Several minutes on this machine;
CI runs it (marker ``vm``; also ``lab``, so ``-m "not lab"`` leaves it out).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tempolab.providers import netns
from tempolab.vm import daemons
from tempolab.vm.lab import VmLab

pytestmark = [pytest.mark.lab, pytest.mark.vm, pytest.mark.timeout(2700)]
REPO = Path(__file__).resolve().parents[1]
TEMPO = str(Path(sys.executable).parent / "tempo")


def _tempo(*args: str, timeout_s: float = 1200) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    p = subprocess.run([TEMPO, *args], cwd=REPO, capture_output=True, text=True, env=env,
                       timeout=timeout_s)
    print(f"$ tempo {' '.join(args)} -> {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-2000:]}")
    return p


def _recap(out: str) -> dict[str, dict[str, int]]:
    text = out[out.rindex("PLAY RECAP"):]
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", text, re.M)}


def test_three_vms_run_the_smoke_suite_and_leave_nothing(tmp_path):
    vm = VmLab("tvm", progress=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True))
    times: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        vm.up(3)
        times["up_s"] = time.monotonic() - t0
        assert [g.ssh for g in vm.status()] == [True, True, True]
        # the host's own namespace never gets an address of the guests' range
        host_addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        assert "10.86.0." not in host_addrs
        # guests have their own kernels: netem is there (the lab's kernel has none)
        assert vm.ssh(1, "modprobe sch_netem && echo ok").stdout.strip() == "ok"

        # the smoke suite as is, but with a health wait sized for TCG guests on a shared
        # machine (a restart over SSH alone took 30-45 s at load 20 here)
        suite = yaml.safe_load((REPO / "experiments" / "suites" / "smoke.yaml").read_text())
        suite["healthy_timeout_s"] = 180
        suite_file = tmp_path / "smoke.yaml"
        suite_file.write_text(yaml.safe_dump(suite))
        t1 = time.monotonic()
        run = _tempo("run", str(suite_file), "--provider", "vagrant", "--quiet", "--out", str(tmp_path))
        times["smoke_s"] = time.monotonic() - t1
        assert run.returncode == 0
        (run_dir,) = [p for p in tmp_path.iterdir() if p.name.endswith("-smoke")]
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["provider"] == "vagrant" and manifest["status"] == "ok"
        trials = [json.loads(x) for x in (run_dir / "trials.jsonl").read_text().splitlines()]
        assert [t["outcome"] for t in trials] == ["ok"]
        samples = [json.loads(x) for x in (run_dir / "observer.jsonl").read_text().splitlines()]
        assert {s["node"] for s in samples if s.get("offset_s") is not None} == {"n1", "n2", "n3"}

        # the same deploy again, with the variables the runner deployed with: changes nothing
        events = [json.loads(x) for x in (run_dir / "runner.jsonl").read_text().splitlines()]
        (vars_,) = [e["vars"] for e in events if e["phase"] == "deploy_start"]
        vars_file = tmp_path / "deploy-vars.json"
        vars_file.write_text(json.dumps(vars_))
        t2 = time.monotonic()
        again = _tempo("deploy", "--provider", "vagrant", "-e", f"@{vars_file}")
        times["redeploy_s"] = time.monotonic() - t2
        assert again.returncode == 0
        rows = _recap(again.stdout)
        assert {n: r["changed"] for n, r in rows.items()} == {"n1": 0, "n2": 0, "n3": 0}

        rep = _tempo("report", str(run_dir), timeout_s=600)
        assert rep.returncode == 0 and (run_dir / "report.html").exists()
    finally:
        done = vm.down()
        times["total_s"] = time.monotonic() - t0
        print("VM system test times:", {k: round(v, 1) for k, v in times.items()}, done)
    assert not netns.exists("tvm")
    assert daemons.running("tvm") == {"libvirtd": None, "virtlogd": None}
    assert not vm.inventory_path.exists()
    assert not list(Path("/etc/libvirt/qemu").glob("tvm-n*.xml"))
