"""The trial driver: deploy, wait for a healthy cluster, warm up, inject faults, record.

Owns the order of a run (docs/runner.md "A run, step by step") and the guarantee that
every fault it installed is reverted on any exit path (exception, Ctrl-C / SIGTERM
raised as KeyboardInterrupt, SSH failure): :class:`FaultSet` is a context manager whose
``__exit__`` reverts what is still active and records leftovers it could not revert.
It ties together parts that know nothing of each other (observer, CPU sampler, SSH
pool, run folder, progress); trial facts come from :mod:`facts` (pure).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import random
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import EnvironmentProblem, HostUnreachable, TempoError
from . import deploy, facts, faults, protocols
from .cpu import CpuSampler
from .faults import Fault, NodeRef
from ..providers import Deployment, Provider, make_provider
from .hosts import Host, load_hosts
from .observer import Observer
from .progress import Progress, print_summary, summarize
from .runfolder import RunFolder
from ..nodelayout import LAYOUT
from ..paths import project_paths
from ..runschema import read_jsonl
from .sshpool import SshPool
from .suite import Suite, parse_suite

MASTER_FAULTS = ("kill", "stop")


@dataclass
class RunOptions:
    results: Path | None = None         # None: the project folder's results/ (paths.py)
    inventory: Path | None = None       # None: the suite's, else the lab's
    lab_name: str | None = None         # overrides the suite's lab name
    lab_subnet: str | None = None
    provider: str | None = None         # lab | vagrant | inventory; None: the suite's
    vm_name: str | None = None          # the VM lab (provider vagrant), default tvm
    quiet: bool = False
    resume: Path | None = None
    deploy: bool = True                 # False: the cluster is already deployed

    @property
    def results_dir(self) -> Path:
        return self.results if self.results is not None else project_paths().results


STAMP = "__tempo_t="


def stamped(cmds: dict[str, str]) -> dict[str, str]:
    """Make each command print the node's real time right after it ran (exit code kept).

    SSH command latency here is 0.1-0.4 s, far more than the failover detail we want;
    the node's own clock at the moment the fault took effect is exact in the lab (nodes
    share the host clock) and NTP-close on VMs. The node's shell is not under
    libfaketime, only the daemon is.
    """
    return {n: f"{{ {c}\n}}; __rc=$?; echo \"{STAMP}$(date +%s.%N)\"; exit $__rc"
            for n, c in cmds.items()}


def effect_time(results: dict, t_sent: float, t_done: float) -> tuple[float, dict[str, float]]:
    """(t_ref, per-node times): the latest node-reported time when it lies within the
    SSH call (a node clock off by more is not trusted), else the call's midpoint."""
    t_node: dict[str, float] = {}
    for n, r in results.items():
        for line in r.stdout.splitlines():
            if line.startswith(STAMP):
                try:
                    t_node[n] = float(line[len(STAMP):])
                except ValueError:
                    pass
    ok = [t for t in t_node.values() if t_sent - 0.05 <= t <= t_done + 0.05]
    if t_node and len(ok) == len(t_node):
        return max(ok), t_node
    return (t_sent + t_done) / 2, t_node


class FaultSet:
    """Faults installed in one trial; reverts everything still active on exit.

    A fault applied with a planned end (``apply(f, planned_end_t=...)``) also arms an
    on-node dead-man watchdog (:func:`faults.guarded`) that reverts it at the planned end
    plus ``deadman_margin_s`` if this process dies without running ``__exit__``
    (SIGKILL); ``revert`` cancels it in the same SSH command.
    """

    def __init__(self, pool: SshPool, record: Callable[[dict], None], trial: int,
                 clock: Callable[[], float] = time.time,
                 deadman_margin_s: float = faults.DEADMAN_MARGIN_S):
        self.pool = pool
        self.record = record
        self.trial = trial
        self.clock = clock
        self.deadman_margin_s = deadman_margin_s
        self.active: list[tuple[int, Fault]] = []
        self.leftovers: list[dict] = []
        self.log: list[dict] = []
        self._next_id = 0
        # per fault id: the revert commands (with the watchdog's cancel when armed)
        self._reverts: dict[int, dict[str, str]] = {}
        # distinguishes this runner's watchdogs from a killed earlier run's on the node
        self._token = secrets.token_hex(3)

    def _rec(self, fid: int, f: Fault, phase: str, detail: str, t_ref: float,
             **extra: Any) -> dict:
        r = {"t_ref": t_ref, "trial": self.trial, "fault_id": fid, "kind": f.kind,
             "phase": phase, "targets": f.targets, "detail": detail, **extra}
        if f.sides:
            r["sides"] = {"a": f.sides[0], "b": f.sides[1]}
        self.record(r)
        self.log.append(r)
        return r

    def apply(self, f: Fault, planned_end_t: float | None = None) -> dict:
        """Apply ``f``; ``planned_end_t`` (reference time of its planned revert) arms the
        dead-man watchdog to fire ``deadman_margin_s`` after it."""
        fid = self._next_id
        self._next_id += 1
        t_before = self.clock()
        delay_s = None
        if planned_end_t is not None:
            delay_s = max(planned_end_t - t_before, 0.0) + self.deadman_margin_s
        key = f"t{self.trial}-f{fid}-{self._token}"
        apply_cmds, self._reverts[fid] = faults.guarded(f, key, delay_s)
        # registered before the commands run: a half-applied fault is still reverted
        self.active.append((fid, f))
        try:
            res = self.pool.run_many(stamped(apply_cmds), timeout_s=30)
        except HostUnreachable as exc:
            return self._rec(fid, f, "start", f.detail, t_before, error=str(exc), t_sent=t_before)
        t_done = self.clock()
        errors = {n: (r.stderr.strip() or f"exit {r.rc}")[-200:] for n, r in res.items() if r.rc}
        t_ref, t_node = effect_time(res, t_before, t_done)
        return self._rec(fid, f, "start", f.detail, t_ref, t_sent=t_before, t_done=t_done,
                         t_node=t_node, **({"error": errors} if errors else {}))

    def revert(self, fid: int) -> dict | None:
        item = next(((i, f) for i, f in self.active if i == fid), None)
        if item is None:
            return None
        _, f = item
        t_before = self.clock()
        try:
            res = self.pool.run_many(stamped(self._reverts.get(fid, f.revert_cmds)), timeout_s=60)
        except HostUnreachable as exc:
            self.leftovers.append({"fault_id": fid, "kind": f.kind, "hosts": exc.hosts})
            self.active.remove(item)
            return self._rec(fid, f, "end", f.revert_detail, t_before, error=str(exc),
                             t_sent=t_before)
        t_done = self.clock()
        self.active.remove(item)
        errors = {n: (r.stderr.strip() or f"exit {r.rc}")[-200:] for n, r in res.items() if r.rc}
        if errors:
            self.leftovers.append({"fault_id": fid, "kind": f.kind, "hosts": sorted(errors)})
        t_ref, t_node = effect_time(res, t_before, t_done)
        return self._rec(fid, f, "end", f.revert_detail, t_ref, t_sent=t_before, t_done=t_done,
                         t_node=t_node, **({"error": errors} if errors else {}))

    def revert_all(self) -> None:
        for fid, _f in list(reversed(self.active)):
            try:
                self.revert(fid)
            except Exception as exc:  # noqa: BLE001 - keep reverting the others
                self.leftovers.append({"fault_id": fid, "error": str(exc)})

    def __enter__(self) -> "FaultSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.revert_all()


def _git_commit() -> str | None:
    try:
        p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_paths().root, capture_output=True,
                           text=True, timeout=5)
        return p.stdout.strip() or None
    except OSError:
        return None


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("tempo-lab", "ansible-core", "ansible", "paramiko", "rich", "PyYAML", "ntplib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def host_facts() -> dict[str, Any]:
    import os

    return {"hostname": platform.node(), "kernel": platform.release(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": sys.version.split()[0]}


class Runner:
    def __init__(self, suite: Suite, opts: RunOptions, suite_raw: dict | None = None):
        self.suite = suite
        self.suite_raw = suite_raw
        self.opts = opts
        self.rf: RunFolder | None = None
        self.pool: SshPool | None = None
        self.observer: Observer | None = None
        self.cpu: CpuSampler | None = None
        self.hosts: list[Host] = []
        self.progress = Progress(suite.name, suite.n_trials, quiet=opts.quiet)
        self._deployed_point: dict | None = None
        self._inventory: Path | None = None
        self._provider: Provider | None = None
        self.deployment: Deployment | None = None
        self.interrupted = False
        self._protocol = suite.protocols[0]

    # ------------------------------------------------------------ infrastructure
    @property
    def provider_name(self) -> str:
        """--provider, else --inventory, else the suite's provider:/inventory:, else lab."""
        if self.opts.provider:
            return self.opts.provider
        if self.opts.inventory is not None:
            return "inventory"
        if self.suite.provider:
            return self.suite.provider
        return "inventory" if self.suite.inventory is not None else "lab"

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = make_provider(
                self.provider_name, lab_name=self._lab_name(),
                lab_subnet=self.opts.lab_subnet or self.suite.lab_subnet,
                inventory=self.opts.inventory or self.suite.inventory, vm_name=self.opts.vm_name,
                progress=lambda m: self.progress.log(f"{self.provider_name}: {m}"))
        return self._provider

    def _lab_name(self) -> str:
        return self.opts.lab_name or self.suite.lab_name

    def _ensure_hosts(self, point: Suite) -> None:
        """Provider -> hosts; a provider that makes hosts brings them to the point's count."""
        prov = self.provider
        if prov.would_change(point.nodes):
            if self.hosts:
                self.collect()  # nodes may go away: keep their logs first
            self.progress.set(phase=f"{prov.name} up {point.nodes} nodes")
            self._deployed_point = None
        if point.clock_mode == "kernel" and self.provider_name == "vagrant":
            # the drift goes below each guest kernel: its qemu starts with the node's rate
            from ..vm import kclock
            dep = prov.init(point.nodes, qemuenv=kclock.qemu_envs(  # type: ignore[call-arg]
                [f"n{k}" for k in range(1, point.nodes + 1)], point))
        else:
            dep = prov.init(point.nodes)
        self.deployment = dep
        inv = dep.inventory
        if inv != self._inventory or self.pool is None or self._deployed_point is None:
            hosts = load_hosts(inv)
            if [h.name for h in hosts] != [h.name for h in self.hosts]:
                if self.pool is not None:
                    self.pool.close()
                self.pool = SshPool(hosts)
                self.hosts = hosts
                if self.observer is not None:
                    self.observer.set_nodes(self.noderefs)
                if self.cpu is not None:
                    self.cpu.nodes = [h.name for h in hosts]
            self._inventory = inv

    def _ensure_hosts_existing(self) -> None:
        """Hosts as the provider has them, never creating or resizing anything."""
        dep = self.deployment = self.provider.existing()
        self.hosts = load_hosts(dep.inventory)
        self.pool = SshPool(self.hosts)
        self._inventory = dep.inventory

    @property
    def noderefs(self) -> list[NodeRef]:
        return [NodeRef(h.name, h.address) for h in self.hosts]

    def _record(self, stream: str) -> Callable[[dict], None]:
        assert self.rf is not None
        rf = self.rf
        return lambda rec: rf.append(stream, rec)

    def _event(self, phase: str, **kw: Any) -> None:
        assert self.rf is not None
        self.rf.append("runner", {"t_ref": time.time(), "phase": phase, **kw})

    def _deploy(self, point: Suite, trial: int, protocol: str = "berkeley") -> None:
        key = {"nodes": point.nodes, "drift": dataclasses.asdict(point.drift),
               "daemon": point.daemon, "protocol": protocol}
        if key == self._deployed_point and not self.suite.redeploy_each_trial:
            return
        assert self.rf is not None and self._inventory is not None
        self._pause_sampling(True)
        try:
            self._deploy_now(point, trial, protocol)
        finally:
            self._pause_sampling(False)
        self._deployed_point = key
        self._fetch_profiles()
        if point.clock_mode == "kernel":
            self._prepare_kernel_clocks()

    def _prepare_kernel_clocks(self) -> None:
        """Kernel clock mode: measure each guest's delivered rate, step it to its offset,
        record both, then start the daemons (deploy left them stopped)."""
        from tempod.profile import load_profile

        from ..vm import kclock, kclock_probe

        assert self.rf is not None and self.pool is not None
        profs = {h.name: load_profile(self.rf.node_dir(h.name) / "drift.toml") for h in self.hosts}
        self.progress.set(phase="kernel clocks: measuring and stepping the guests (20 s)")
        recs = kclock_probe.prepare_nodes(
            self.pool, self.hosts, self.rf.path, profs,
            host_tsc_mhz=kclock.host_tsc_mhz(_dmesg(), Path("/proc/cpuinfo").read_text()),
            seconds=20.0, progress=self.progress.log)
        self._event("kernel_clocks", nodes={n: r.delivered_rate_ppm for n, r in recs.items()})
        m = self.rf.read_manifest()
        for n in recs:
            node = m["nodes"].setdefault(n, {})
            node["requested_profile"] = node.get("profile")
            node["profile"] = _profile_dict(self.rf.node_dir(n) / "drift.toml")
            node["kernel_clock"] = json.loads((self.rf.node_dir(n) / "kernel_clock.json").read_text())
        self.rf.write_manifest(m)
        self.pool.run_many({h.name: faults.service_cmd("start") for h in self.hosts})

    def _pause_sampling(self, on: bool) -> None:
        # nothing to observe while ansible (re)starts the daemons; samples then would
        # only be noise with trial = null
        if self.observer is not None:
            self.observer.pause() if on else self.observer.resume()
        if self.cpu is not None:
            self.cpu.paused.set() if on else self.cpu.paused.clear()

    def _deploy_now(self, point: Suite, trial: int, protocol: str = "berkeley") -> None:
        assert self.rf is not None and self._inventory is not None
        if self.opts.deploy:
            self.progress.set(phase=f"deploying {protocol} (ansible-playbook)")
            dvars = deploy.deploy_vars(point, protocol)
            self._event("deploy_start", trial=trial, protocol=protocol, vars=dvars)
            took = deploy.run_playbook("deploy", self._inventory, dvars, self.rf.path / "ansible")
            self._event("deploy_end", trial=trial, seconds=took)
            self.progress.log(f"deployed {protocol} in {took:.1f} s")
        else:
            if len(self.suite.protocols) > 1:
                raise EnvironmentProblem("--no-deploy cannot switch protocols (berkeley/cristian "
                                         "differ in tempod's config, ntp runs chronyd): deploy, or "
                                         "run one protocol")
            self.restart_all(protocol)

    def _fetch_profiles(self) -> None:
        assert self.rf is not None and self.pool is not None
        nodes = {}
        for h in self.hosts:
            dest = self.rf.node_dir(h.name) / "drift.toml"
            prof = None
            try:
                if self.pool.get(h.name, LAYOUT.profile, dest):
                    prof = _profile_dict(dest)
            except HostUnreachable as exc:
                self._event("fetch_failed", node=h.name, error=str(exc))
            nodes[h.name] = {"address": h.address, "profile": prof}
        m = self.rf.read_manifest()
        m.setdefault("nodes", {}).update(nodes)
        self.rf.write_manifest(m)

    def restart_all(self, protocol: str | None = None) -> None:
        assert self.pool is not None
        self.progress.set(phase="restarting daemons")
        daemon = protocols.daemon_of(protocol or self._protocol)
        cmds = {h.name: faults.service_cmd("restart", daemon) for h in self.hosts}
        res = self.pool.run_many(cmds, timeout_s=60)
        bad = {n: (r.stderr.strip() or r.stdout.strip())[-200:] for n, r in res.items() if r.rc}
        self._event("restart_all", errors=bad or None)
        for n, msg in bad.items():
            self.progress.log(f"{n}: restart failed: {msg}")

    def cleanup(self) -> dict[str, str]:
        """Revert any leftover fault on every node (``tempo run --cleanup``)."""
        assert self.pool is not None
        res = self.pool.run_many({h.name: faults.cleanup_cmd() for h in self.hosts},
                                 timeout_s=60)
        return {n: (r.stdout + r.stderr).strip() or "clean" for n, r in res.items()}

    def collect(self) -> None:
        """Every node's event log -> nodes/<name>/events.jsonl (SFTP); with protocol ntp
        in the suite, chronyd's own logs too (nodes/<name>/chrony/)."""
        assert self.rf is not None and self.pool is not None
        for h in self.hosts:
            try:
                ok = self.pool.get(h.name, LAYOUT.event_log, self.rf.node_dir(h.name) / "events.jsonl")
                if not ok:
                    self._event("collect_missing", node=h.name, path=LAYOUT.event_log)
                if "ntp" in self.suite.protocols:
                    for name in protocols.CHRONY_LOGS:
                        self.pool.get(h.name, f"{protocols.CHRONY_LOG_DIR}/{name}",
                                      self.rf.node_dir(h.name) / "chrony" / name)
            except HostUnreachable as exc:
                self._event("collect_failed", node=h.name, error=str(exc))

    def _chrony_view(self, k: int) -> None:
        """chronyd's own view at the end of trial ``k`` -> nodes/<name>/chronyc-trial<k>.txt."""
        assert self.rf is not None and self.pool is not None
        try:
            res = self.pool.run_many({h.name: protocols.chronyc_view_cmd() for h in self.hosts},
                                     timeout_s=30)
        except HostUnreachable as exc:
            self._event("chronyc_failed", trial=k, error=str(exc))
            return
        for n, r in res.items():
            (self.rf.node_dir(n) / f"chronyc-trial{k}.txt").write_text(r.stdout)

    # ------------------------------------------------------------ observation
    def wait_healthy(self, timeout_s: float, stable_s: float) -> tuple[bool, str | None, str]:
        """Wait until one master leads all others, the same master for ``stable_s``
        (the trial uses one round interval). Right after a restart two candidates can
        both win for a moment before RESOLVE/QUIT settles it; a single healthy sweep then
        names a master that is not the one the trial's fault will find."""
        assert self.observer is not None
        deadline = time.monotonic() + timeout_s
        reason = "no samples yet"
        names = [h.name for h in self.hosts]
        since: tuple[str | None, float] | None = None
        while time.monotonic() < deadline:
            ok, m, reason = facts.health(self.observer.latest(), names)
            self.progress.set(master=m, health=reason)
            now = time.monotonic()
            if not ok:
                since = None
            elif since is None or since[0] != m:
                since = (m, now)
            elif now - since[1] >= stable_s:
                return True, m, reason
            time.sleep(0.2)
        return False, None, reason

    def _sleep_until(self, t_wall: float) -> None:
        """Sleep until controller time ``t_wall``, refreshing the progress display."""
        assert self.observer is not None
        while True:
            left = t_wall - time.time()
            if left <= 0:
                return
            latest = self.observer.latest()
            names = [h.name for h in self.hosts]
            _ok, m, why = facts.health(latest, names)
            st = facts.skew_stats(latest.values())
            self.progress.set(master=m, health=why, skew_s=st["max_skew_s"])
            time.sleep(min(left, 0.25))

    def _node_events(self) -> dict[str, list[dict]]:
        """Fetch every node's log now and map it to reference time via its drift profile."""
        assert self.rf is not None
        self.collect()
        out: dict[str, list[dict]] = {}
        for h in self.hosts:
            d = self.rf.node_dir(h.name)
            ev, prof = d / "events.jsonl", d / "drift.toml"
            if not ev.exists():
                continue
            out[h.name] = facts.map_events(read_jsonl(ev), _true_at(prof))
        return out

    # ------------------------------------------------------------ one trial
    def run_trial(self, k: int) -> dict:
        assert self.rf is not None and self.observer is not None and self.pool is not None
        point = self.suite.at_point(k - 1)
        protocol = self._protocol = self.suite.protocol_of(k - 1)
        base = self.suite.base_trial(k - 1) + 1  # the same fault draw under every protocol
        self.progress.set(trial=k, phase=f"preparing {protocol}")
        self.observer.set_trial(k)
        if self.cpu is not None:
            self.cpu.trial = k
        self._ensure_hosts(point)
        self._deploy(point, k, protocol)
        self._pause_sampling(False)
        self.observer.set_trial(k)
        if self.cpu is not None:
            self.cpu.trial = k
        self._event("trial_start", trial=k, point=self.suite.point(k - 1), protocol=protocol)
        self.progress.set(phase="waiting for one master, all following")
        stable = max(1.0, float(point.daemon["round_interval_s"]))
        ok, master, why = self.wait_healthy(self.suite.healthy_timeout_s, stable)
        if not ok:
            self.progress.log(f"trial {k}: unhealthy ({why}); restarting daemons")
            self.restart_all()
            ok, master, why = self.wait_healthy(self.suite.healthy_timeout_s, stable)
        t_start = time.time()
        rec: dict[str, Any] = {"trial": k, "protocol": protocol, "base_trial": base,
                               "t_start": t_start, "point": self.suite.point(k - 1),
                               "nodes": [h.name for h in self.hosts], "master_before": master,
                               "max_drift_ppm": point.drift.max_ppm,
                               "round_interval_s": point.daemon["round_interval_s"]}
        if not ok:
            rec.update(t_end=time.time(), outcome="failed", reason=f"cluster not healthy: {why}")
            self.rf.append("trials", rec)
            return rec
        self.progress.set(phase=f"warm-up {point.warm_up_s:g} s")
        self._sleep_until(t_start + point.warm_up_s)
        t0 = time.time()
        rec["warm_up_end_t"] = t0
        latest = self.observer.latest()
        _, master_now, _ = facts.health(latest, [h.name for h in self.hosts])
        master = master_now or master
        rng = random.Random(f"{self.suite.seed}:{base}")
        resolved: list[Fault] = []
        sides = None
        for spec in point.faults:
            f = faults.resolve(spec, self.noderefs, master, rng, sides,
                               daemon=protocols.daemon_of(protocol))
            sides = f.sides or sides
            resolved.append(f)
        timeline: list[tuple[float, int, str, int]] = []
        for i, f in enumerate(resolved):
            timeline.append((f.at_s, 0, "apply", i))
            if f.duration_s is not None:
                timeline.append((f.at_s + f.duration_s, 1, "revert", i))
        timeline.sort()
        applied: dict[int, dict] = {}
        ended: dict[int, dict] = {}
        fids: dict[int, int] = {}
        with FaultSet(self.pool, self._record("faults"), k) as fs:
            for at, _o, action, i in timeline:
                f = resolved[i]
                self.progress.set(phase=f"{'fault' if action == 'apply' else 'revert'} "
                                        f"{f.kind} at +{at:.1f} s")
                self._sleep_until(t0 + at)
                if action == "apply":
                    end_t = t0 + f.at_s + f.duration_s if f.duration_s is not None else None
                    applied[i] = fs.apply(f, planned_end_t=end_t)
                    fids[i] = fs.log[-1]["fault_id"]
                    self.progress.log(f"trial {k}: {f.detail} on {','.join(f.targets)}")
                elif i in fids:
                    r = fs.revert(fids[i])
                    if r is not None:
                        ended[i] = r
            self.progress.set(phase="observing")
            self._sleep_until(t0 + point.trial_duration_s)
            # faults without a duration are reverted here, inside the trial
            for i, fid in fids.items():
                if i not in ended:
                    r = fs.revert(fid)
                    if r is not None:
                        ended[i] = r
            leftovers = list(fs.leftovers)
        t_end = time.time()
        if protocol == "ntp":
            self._chrony_view(k)
        rec.update(t_end=t_end, faults=[{"kind": f.kind, "at_s": f.at_s,
                                         "duration_s": f.duration_s, "targets": f.targets}
                                        for f in resolved])
        if leftovers:
            rec["leftovers"] = leftovers
        rec.update(self._trial_facts(k, point, resolved, applied, ended, t0, t_end, protocol))
        errors = [a.get("error") for a in applied.values() if a.get("error")]
        if errors:
            # the real cause: what follows from a fault that did not happen is noise
            rec.update(outcome="failed", reason=f"fault command failed: {errors[0]}",
                       facts_reason=rec.get("reason"))
        self.rf.append("trials", rec)
        self._event("trial_end", trial=k, outcome=rec.get("outcome"))
        self.progress.log(f"trial {k}: {rec.get('outcome')}"
                          + (f" ({rec.get('reason')})" if rec.get("reason") else "")
                          + (f", failover {rec['new_master_s']:.2f} s"
                             if rec.get("new_master_s") is not None else ""))
        return rec

    def _trial_facts(self, k: int, point: Suite, resolved: list[Fault], applied: dict,
                     ended: dict, t0: float, t_end: float,
                     protocol: str = "berkeley") -> dict[str, Any]:
        assert self.observer is not None
        samples = self.observer.samples(since=t0 - 1.0, until=t_end)
        names = [h.name for h in self.hosts]
        settle = point.settle_time_s()
        out: dict[str, Any] = {}
        first = next((i for i, f in enumerate(resolved) if f.kind in MASTER_FAULTS
                      and i in applied), None)
        part = next((i for i, f in enumerate(resolved) if f.kind == "partition"
                     and i in applied), None)
        try:
            if first is not None:
                f = resolved[first]
                start = applied[first]["t_ref"]
                end = ended.get(first, {}).get("t_ref", t_end)
                events = self._node_events()
                victim = f.targets[0]
                if not protocols.has_election(protocol):
                    # no election: no failover to time, the server is simply gone
                    back = ended.get(first, {})
                    out.update(protocols.server_loss(samples, start, victim, names,
                                                     back.get("t_ref"), until=t_end,
                                                     down_until=back.get("t_sent")))
                elif f.kind == "kill":
                    out.update(facts.failover(samples, start, victim, names, events,
                                              until=end))
                    out["restart_t"] = ended.get(first, {}).get("t_ref")
                else:
                    out.update(facts.pause(samples, start, end, victim, names, settle,
                                           events, until=t_end))
            elif part is not None:
                f = resolved[part]
                assert f.sides is not None
                start = applied[part]["t_ref"]
                heal = ended.get(part, {}).get("t_ref", t_end)
                out.update(facts.partition(samples, start, heal, f.sides, settle, until=t_end))
            else:
                out.update(facts.steady(samples, t0, names, settle, until=t_end))
        except Exception as exc:  # noqa: BLE001 - a checker crash is "unknown", not a lost run
            out.update(outcome="unknown", reason=f"checker error: {exc!r}")
        # skew once everything had time to settle after the last fault
        last_fault_end = max([r["t_ref"] for r in ended.values()]
                             + [r["t_ref"] for r in applied.values()] + [t0])
        st = facts.skew_stats(samples, since=t0)
        out["max_skew_s"] = st["max_skew_s"]
        out["median_skew_s"] = st["median_skew_s"]
        st2 = facts.skew_stats(samples, since=last_fault_end + settle)
        out["max_skew_settled_s"] = st2["max_skew_s"]
        return out

    # ------------------------------------------------------------ the run
    def _manifest(self) -> dict[str, Any]:
        s = self.suite
        return {"suite": s.as_dict(), "suite_raw": self.suite_raw, "seed": s.seed,
                "inventory": None if self._inventory is None else str(self._inventory),
                "provider": self.provider_name,
                "lab": self._lab_name() if self.provider_name == "lab" else None,
                "nodes": {}, "versions": _versions(), "git_commit": _git_commit(),
                "host": host_facts(), "started": time.time(), "ended": None,
                "status": "running", "n_trials": s.n_trials}

    def run(self) -> int:
        s = self.suite
        from ..vm import kclock

        # refuse before creating anything: lab nodes share this kernel (no netem, and
        # its clock must never be disciplined)
        kclock.require_provider(s.clock_mode, provider=self.provider_name,
                                shares_host_kernel=self.provider.shares_host_kernel,
                                has_vms=self.provider_name == "vagrant")
        if self.provider.shares_host_kernel:
            deploy.require_netem(s, local_kernel=True)
        self._ensure_hosts(s.at_point(0))
        assert self.pool is not None
        if not self.provider.shares_host_kernel:
            deploy.require_netem(s, local_kernel=False, check_remote=lambda cmd: {
                n: r.rc == 0 for n, r in self.pool.run_many(  # type: ignore[union-attr]
                    {h.name: cmd for h in self.hosts}).items()})
        if self.opts.resume is not None:
            self.rf = RunFolder.open(self.opts.resume)
            start = self.rf.next_trial(s.n_trials)
            self.rf.update_manifest(status="running", resumed=time.time())
            self._event("resume", first_trial=start)
            if start is None:
                self.progress.log("all trials already finished")
        else:
            self.rf = RunFolder.create(self.opts.results_dir, s.name, self._manifest())
            start = 1
            self._event("start", n_trials=s.n_trials)
        self.observer = Observer(self.noderefs, port=int(s.daemon.get("ntp_port", 123)),
                                 hz=s.observer_hz, timeout_s=s.observer_timeout_s,
                                 retries=s.observer_retries,
                                 retry_bound_floor_s=s.observer_retry_bound_s,
                                 retry_factor=s.observer_retry_factor,
                                 realtime_priority=s.observer_realtime_priority,
                                 netns=self.deployment.netns if self.deployment else None,
                                 sink=self._record("observer"))
        pool = self.pool

        def run_cmd(node: str, cmd: str) -> str:
            return pool.run(node, cmd, timeout_s=10).stdout

        def role(node: str) -> str | None:
            assert self.observer is not None
            return self.observer.latest().get(node, {}).get("state")

        self.cpu = CpuSampler([h.name for h in self.hosts], run_cmd, self._record("cpu"),
                              role, s.cpu_interval_s)
        status = "ok"
        rc = 0
        try:
            with self.progress:
                # nothing is recorded until the first trial's deployment (or restart) is
                # done: readings of the daemons as an earlier run left them are not data
                self._pause_sampling(True)
                self.observer.start()
                if self.observer.realtime_warning:
                    self._event("warning", detail=self.observer.realtime_warning)
                    self.progress.log(self.observer.realtime_warning)
                self.cpu.start()
                if start is not None:
                    for k in range(start, s.n_trials + 1):
                        self.run_trial(k)
                self.progress.set(phase="collecting logs")
                self.collect()
        except KeyboardInterrupt:
            status, rc, self.interrupted = "interrupted", 130, True
        except TempoError as exc:
            status = "failed"
            self._event("error", error=str(exc))
            raise
        finally:
            self.cpu.stop()
            self.observer.stop()
            if self.interrupted:
                try:
                    self.collect()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
            self._event("end", status=status)
            self.rf.update_manifest(ended=time.time(), status=status)
            self.print_summary()
            self.rf.close()
            if self.pool is not None:
                self.pool.close()
        if status == "ok" and any(t.get("outcome") != "ok" for t in self.rf.read("trials")):
            rc = 1
        return rc

    def print_summary(self) -> dict[str, Any]:
        assert self.rf is not None
        trials = self.rf.read("trials")
        warm = {t["trial"]: t["warm_up_end_t"] for t in trials if t.get("warm_up_end_t")}
        summ = summarize(trials, self.rf.read("observer"), warm, interrupted=self.interrupted)
        print_summary(summ, str(self.rf.path), plain=self.opts.quiet)
        return summ


def _dmesg() -> str:
    try:
        return subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _profile_dict(path: Path) -> dict[str, Any] | None:
    import tomllib

    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None


def _true_at(profile_path: Path) -> Callable[[float], float]:
    """hw -> reference time for a node; identity (with a note) when the profile is missing."""
    try:
        from tempod.profile import load_profile

        return load_profile(profile_path).true_at
    except Exception:  # noqa: BLE001 - missing/invalid profile: hw taken as reference
        return lambda hw: hw


def resume_suite(run_dir: Path) -> tuple[Suite, dict | None]:
    """The suite a run folder was started with (from its manifest)."""
    m = RunFolder.open(run_dir).read_manifest()
    raw = m.get("suite_raw")
    if raw is None:
        raise EnvironmentProblem(f"{run_dir}: manifest has no suite_raw; cannot resume")
    return parse_suite(raw, m.get("suite", {}).get("source", "suite.yaml")), raw
