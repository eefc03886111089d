"""Real VMs end to end: box, 3 guests under QEMU/TCG in kernel clock mode, deploy,
smoke suite, netem on guest kernels, report, down.

Builds (or reuses, by recipe hash) the Debian box and runs ``tempo run smoke
--provider vagrant --clock-mode kernel`` with no VM up: the runner boots the 3 guests
(libvirtd inside the netns ``tvm``), each qemu under libfaketime with its node's drift
rate so the guest's own kernel clock runs off by it; deploys with the same playbooks as
on the lab (tempod's kernel backend, daemons left stopped); measures each guest's
delivered rate and steps it to its offset; starts the daemons, which discipline the
real guest clocks through adjtimex; the observer reads each guest over NTP through the
namespace.  Then, on the same guests: the kernel-mode run folder's records
(kclockkit.check_kernel_run), the netem faults on real guest kernels
(kclockkit.check_netem_on_guests), a second deploy changes nothing, the report, and
everything torn down even when a step fails: no domain, network, daemon or namespace
is left.  Several minutes on this machine; CI runs it (marker ``vm``; also ``lab``, so
``-m "not lab"`` leaves it out).
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

from kclockkit import check_kernel_run, check_netem_on_guests
from tempolab.providers import netns
from tempolab.runner.faults import NodeRef
from tempolab.runner.suite import SUITES_DIR, load_suite
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


def test_three_vms_run_the_smoke_suite_in_kernel_mode_and_leave_nothing(tmp_path):
    vm = VmLab("tvm", progress=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True))
    times: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        # the smoke suite as is, in kernel clock mode, with a health wait sized for TCG
        # guests on a shared machine (a restart over SSH alone took 30-45 s at load 20 here)
        suite = yaml.safe_load((SUITES_DIR / "smoke.yaml").read_text())
        suite["healthy_timeout_s"] = 180
        # and the heartbeat timers of the VM suites (suites/vm-leader-kill.yaml): TCG guests
        # stall for up to about a second under load, so the lab's 0.6-1.2 s master timeout
        # started false elections here (a run at load 12 ended with two masters)
        vm_daemon = load_suite("vm-leader-kill").daemon
        suite["daemon"].update({k: vm_daemon[k] for k in
                                ("heartbeat_interval_s", "master_timeout_min_s", "master_timeout_max_s")})
        suite_file = tmp_path / "smoke.yaml"
        suite_file.write_text(yaml.safe_dump(suite))
        # no VM is up: the runner boots them, each qemu with its node's drift rate
        run = _tempo("run", str(suite_file), "--provider", "vagrant", "--clock-mode", "kernel",
                     "--quiet", "--out", str(tmp_path), timeout_s=2000)
        times["up_deploy_smoke_s"] = time.monotonic() - t0
        up_s = (vm.state() or {}).get("up_s")
        if up_s is not None:
            times["up_s"] = float(up_s)
        assert run.returncode == 0
        (run_dir,) = [p for p in tmp_path.iterdir() if p.name.endswith("-smoke")]
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["provider"] == "vagrant" and manifest["status"] == "ok"
        trials = [json.loads(x) for x in (run_dir / "trials.jsonl").read_text().splitlines()]
        assert [t["outcome"] for t in trials] == ["ok"]
        samples = [json.loads(x) for x in (run_dir / "observer.jsonl").read_text().splitlines()]
        assert {s["node"] for s in samples if s.get("offset_s") is not None} == {"n1", "n2", "n3"}
        # delivered rates recorded (dmesg and measured), drift.toml = delivered, kernel backend
        recs = check_kernel_run(run_dir, ["n1", "n2", "n3"])
        print("kernel clocks:", {n: (r["requested_rate_ppm"], r["delivered_rate_ppm"]) for n, r in recs.items()})

        assert [g.ssh for g in vm.status()] == [True, True, True]
        # the host's own namespace never gets an address of the guests' range
        host_addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        assert "10.86.0." not in host_addrs
        # guests have their own kernels: netem is there (the lab's kernel has none), and
        # the runner's netem faults apply, look as intended and revert cleanly
        assert vm.ssh(1, "modprobe sch_netem && echo ok").stdout.strip() == "ok"

        def guest_ssh(node: str, cmd: str) -> tuple[int, str]:
            p = vm.ssh(int(node[1:]), cmd)
            return p.returncode, p.stdout + p.stderr

        t1 = time.monotonic()
        check_netem_on_guests(guest_ssh, [NodeRef(f"n{k}", vm.address(k)) for k in (1, 2, 3)])
        times["netem_s"] = time.monotonic() - t1

        # the same deploy again, with the variables the runner deployed with, twice: the
        # first may only enable the unit (kernel mode deployed it stopped and disabled and
        # the runner started it; "started" also means enabled), the second changes nothing
        events = [json.loads(x) for x in (run_dir / "runner.jsonl").read_text().splitlines()]
        (vars_,) = [e["vars"] for e in events if e["phase"] == "deploy_start"]
        assert vars_.get("tempod_state") == "stopped", vars_
        vars_["tempod_state"] = "started"
        vars_file = tmp_path / "deploy-vars.json"
        vars_file.write_text(json.dumps(vars_))
        first = _tempo("deploy", "--provider", "vagrant", "-e", f"@{vars_file}")
        assert first.returncode == 0
        assert all(r["changed"] <= 1 for r in _recap(first.stdout).values()), first.stdout[-2000:]
        t2 = time.monotonic()
        again = _tempo("deploy", "--provider", "vagrant", "-e", f"@{vars_file}")
        times["redeploy_s"] = time.monotonic() - t2
        assert again.returncode == 0
        rows = _recap(again.stdout)
        assert {n: r["changed"] for n, r in rows.items()} == {"n1": 0, "n2": 0, "n3": 0}

        t3 = time.monotonic()
        rep = _tempo("report", str(run_dir), timeout_s=600)
        times["report_s"] = time.monotonic() - t3
        assert rep.returncode == 0 and (run_dir / "report.html").exists()
    finally:
        done = vm.down()
        times["total_s"] = time.monotonic() - t0
        print("VM system test times:", {k: round(v, 1) for k, v in times.items()}, done)
    assert not netns.exists("tvm")
    assert daemons.running("tvm") == {"libvirtd": None, "virtlogd": None}
    assert not vm.inventory_path.exists()
    assert not list(Path("/etc/libvirt/qemu").glob("tvm-n*.xml"))
