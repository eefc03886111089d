"""The thin driver: sequences one run from the parts that do the work.

Owns the order of a run (docs/runner.md "A run, step by step"): provider -> hosts, run
folder, services, then per trial: deploy if the point changed, wait healthy, warm up,
the fault steps, observe, facts, record; then collect logs, close the manifest, print
the summary. Everything else is a module of its own that knows nothing of the others:
the trial timeline (:mod:`schedule`, pure), faults installed and always reverted
(:mod:`faultset`), observer + CPU sampler (:mod:`services`), deploy (:mod:`deploy`),
log collection (:mod:`collect`), health checks (:mod:`health`), trial facts
(:mod:`trialfacts` over :mod:`facts`), the run folder (:mod:`runfolder`) and what the
manifest says about the host (:mod:`runinfo`). The kernel clock step (VMs) is here.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import EnvironmentProblem, TempoError
from . import collect, deploy, facts, faults, health, protocols, runinfo, schedule
from .collect import profile_dict as _profile_dict
from .cpu import CpuSampler
from .faults import NodeRef
from .faultset import FaultSet, effect_time, stamped  # noqa: F401 - re-exported (tests, tools)
from ..providers import Deployment, Provider, make_provider
from .hosts import Host, load_hosts
from .observer import Observer
from .progress import Progress, print_summary, summarize
from .runfolder import RunFolder
from ..paths import project_paths
from .services import Services
from .sshpool import SshPool
from .suite import Suite, parse_suite
from .trialfacts import MASTER_FAULTS, trial_facts  # noqa: F401 - MASTER_FAULTS re-exported


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


class Runner:
    def __init__(self, suite: Suite, opts: RunOptions, suite_raw: dict | None = None):
        self.suite = suite
        self.suite_raw = suite_raw
        self.opts = opts
        self.rf: RunFolder | None = None
        self.pool: SshPool | None = None
        self.observer: Observer | None = None
        self.cpu: CpuSampler | None = None
        self.services: Services | None = None  # observer + cpu (the two above are its parts)
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
        if self.services is not None:
            self.services.pause(on)

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
        collect.fetch_profiles(self.pool, self.hosts, self.rf, self._event)

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
        """Every node's event log (and chronyd's logs with protocol ntp) -> the run folder."""
        assert self.rf is not None and self.pool is not None
        collect.collect_logs(self.pool, self.hosts, self.rf, self._event,
                             chrony="ntp" in self.suite.protocols)

    def _node_events(self) -> dict[str, list[dict]]:
        """Fetch every node's log now and map it to reference time via its drift profile."""
        assert self.rf is not None
        self.collect()
        samples = self.services.samples() if self.services is not None else None
        return collect.node_events(self.rf, self.hosts, samples)

    def wait_healthy(self, timeout_s: float, stable_s: float) -> tuple[bool, str | None, str]:
        assert self.services is not None
        return health.wait_healthy(self.services.latest, [h.name for h in self.hosts],
                                   self.progress, timeout_s, stable_s)

    def _sleep_until(self, t_wall: float) -> None:
        assert self.services is not None
        health.watch_until(t_wall, self.services.latest, [h.name for h in self.hosts], self.progress)

    # ------------------------------------------------------------ one trial
    def run_trial(self, k: int) -> dict:
        assert self.rf is not None and self.services is not None and self.pool is not None
        spec = schedule.trial_spec(self.suite, k)
        point, protocol = spec.point, spec.protocol
        self._protocol = protocol
        self.progress.set(trial=k, phase=f"preparing {protocol}")
        self.services.set_trial(k)
        self._ensure_hosts(point)
        self._deploy(point, k, protocol)
        self._pause_sampling(False)
        self.services.set_trial(k)
        self._event("trial_start", trial=k, point=self.suite.point(k - 1), protocol=protocol)
        self.progress.set(phase="waiting for one master, all following")
        ok, master, why = self.wait_healthy(self.suite.healthy_timeout_s, spec.stable_s)
        if not ok:
            self.progress.log(f"trial {k}: unhealthy ({why}); restarting daemons")
            self.restart_all()
            ok, master, why = self.wait_healthy(self.suite.healthy_timeout_s, spec.stable_s)
        t_start = time.time()
        rec: dict[str, Any] = {"trial": k, "protocol": protocol, "base_trial": spec.base_trial,
                               "t_start": t_start, "point": self.suite.point(k - 1),
                               "nodes": [h.name for h in self.hosts], "master_before": master,
                               "max_drift_ppm": point.drift.max_ppm,
                               "round_interval_s": point.daemon["round_interval_s"]}
        if not ok:
            rec.update(t_end=time.time(), outcome="failed", reason=f"cluster not healthy: {why}")
            self.rf.append("trials", rec)
            return rec
        self.progress.set(phase=f"warm-up {spec.warm_up_s:g} s")
        self._sleep_until(t_start + spec.warm_up_s)
        t0 = time.time()
        rec["warm_up_end_t"] = t0
        _, master_now, _ = facts.health(self.services.latest(), [h.name for h in self.hosts])
        plan = schedule.plan_faults(self.suite, spec, self.noderefs, master_now or master)
        resolved = plan.faults
        applied: dict[int, dict] = {}
        ended: dict[int, dict] = {}
        fids: dict[int, int] = {}
        with FaultSet(self.pool, self._record("faults"), k) as fs:
            for step in plan.steps:
                f = resolved[step.index]
                self.progress.set(phase=f"{'fault' if step.action == 'apply' else 'revert'} "
                                        f"{f.kind} at +{step.at_s:.1f} s")
                self._sleep_until(t0 + step.at_s)
                if step.action == "apply":
                    end_s = plan.planned_end_s(step.index)
                    applied[step.index] = fs.apply(f, planned_end_t=None if end_s is None else t0 + end_s)
                    fids[step.index] = fs.log[-1]["fault_id"]
                    self.progress.log(f"trial {k}: {f.detail} on {','.join(f.targets)}")
                elif step.index in fids:
                    r = fs.revert(fids[step.index])
                    if r is not None:
                        ended[step.index] = r
            self.progress.set(phase="observing")
            self._sleep_until(t0 + spec.duration_s)
            # faults without a duration are reverted here, inside the trial
            for i, fid in fids.items():
                if i not in ended:
                    r = fs.revert(fid)
                    if r is not None:
                        ended[i] = r
            leftovers = list(fs.leftovers)
        t_end = time.time()
        if protocol == "ntp":
            collect.chrony_view(self.pool, self.hosts, self.rf, self._event, k)
        rec.update(t_end=t_end, faults=[{"kind": f.kind, "at_s": f.at_s,
                                         "duration_s": f.duration_s, "targets": f.targets}
                                        for f in resolved])
        if leftovers:
            rec["leftovers"] = leftovers
        rec.update(trial_facts(self.services.samples(since=t0 - 1.0, until=t_end),
                               [h.name for h in self.hosts], resolved, applied, ended, t0, t_end,
                               point.settle_time_s(), self._node_events, protocol))
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

    # ------------------------------------------------------------ the run
    def _manifest(self) -> dict[str, Any]:
        s = self.suite
        return {"suite": s.as_dict(), "suite_raw": self.suite_raw, "seed": s.seed,
                "inventory": None if self._inventory is None else str(self._inventory),
                "provider": self.provider_name,
                "lab": self._lab_name() if self.provider_name == "lab" else None,
                "nodes": {}, "versions": runinfo.versions(), "git_commit": runinfo.git_commit(),
                "host": runinfo.host_facts(), "started": time.time(), "ended": None,
                "status": "running", "n_trials": s.n_trials}

    def _check_environment(self) -> None:
        """Refuse before creating anything: lab nodes share this kernel (no netem, and
        its clock must never be disciplined); VMs are checked for netem once up."""
        from ..vm import kclock

        s = self.suite
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

    def _open_run_folder(self) -> int | None:
        """A new run folder, or the one to resume; the first trial to run (None: all done)."""
        s = self.suite
        if self.opts.resume is not None:
            self.rf = RunFolder.open(self.opts.resume)
            start = self.rf.next_trial(s.n_trials)
            self.rf.update_manifest(status="running", resumed=time.time())
            self._event("resume", first_trial=start)
            if start is None:
                self.progress.log("all trials already finished")
            return start
        self.rf = RunFolder.create(self.opts.results_dir, s.name, self._manifest())
        self._event("start", n_trials=s.n_trials)
        return 1

    def run(self) -> int:
        s = self.suite
        self._check_environment()
        start = self._open_run_folder()
        assert self.rf is not None and self.pool is not None
        pool = self.pool
        self.services = Services.for_suite(
            s, self.noderefs, lambda node, cmd: pool.run(node, cmd, timeout_s=10).stdout,
            self._record, netns=self.deployment.netns if self.deployment else None)
        self.observer, self.cpu = self.services.observer, self.services.cpu
        status = "ok"
        rc = 0
        try:
            with self.progress:
                # nothing is recorded until the first trial's deployment (or restart) is
                # done: readings of the daemons as an earlier run left them are not data
                self._pause_sampling(True)
                warning = self.services.start()
                if warning:
                    self._event("warning", detail=warning)
                    self.progress.log(warning)
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
            self.services.stop()
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



def resume_suite(run_dir: Path) -> tuple[Suite, dict | None]:
    """The suite a run folder was started with (from its manifest)."""
    m = RunFolder.open(run_dir).read_manifest()
    raw = m.get("suite_raw")
    if raw is None:
        raise EnvironmentProblem(f"{run_dir}: manifest has no suite_raw; cannot resume")
    return parse_suite(raw, m.get("suite", {}).get("source", "suite.yaml")), raw
