"""Where things are on a node: the one controller-side copy of the roles' file layout.

Owns the paths the runner, the faults and the lab use on a node -- the daemon's config,
drift profile, key, pidfile, event log and output, the service tool, chronyd's files
for protocol ntp, the dead-man watchdogs' folder and log -- and the service command
lines built from them.  The roles decide the layout (``roles/tempod`` and
``roles/chrony``: their ``*_install_dir`` / ``*_config_dir`` / ``*_log_dir`` /
``*_run_dir`` defaults and the internal names in ``vars/main.yml``);
tests/test_nodelayout.py renders those variables and fails if this module disagrees.
The lab binds a private folder over each of :attr:`NodeLayout.binds` on every node.

It knows nothing of SSH or of what the files contain.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeLayout:
    install_dir: str = "/opt/tempo"          # tempod_install_dir
    config_dir: str = "/etc/tempo"           # tempod_config_dir, chrony_config_dir
    log_dir: str = "/var/log/tempo"          # tempod_log_dir, chrony_log_dir
    run_dir: str = "/run/tempo"              # tempod_run_dir, chrony_run_dir
    chrony_install_dir: str = "/opt/tempo/chrony"   # chrony_install_dir

    # ---------------------------------------------------------------- tempod
    @property
    def config(self) -> str:            # _tempod_config
        return f"{self.config_dir}/tempod.toml"

    @property
    def profile(self) -> str:           # _tempod_profile (and chrony_drift_profile)
        return f"{self.config_dir}/drift.toml"

    @property
    def key(self) -> str:               # _tempod_key
        return f"{self.config_dir}/tempo.key"

    @property
    def pidfile(self) -> str:           # _tempod_pidfile
        return f"{self.run_dir}/tempod.pid"

    @property
    def event_log(self) -> str:         # tempod.toml's event_log (templates/tempod.toml.j2)
        return f"{self.log_dir}/events.jsonl"

    @property
    def stdout(self) -> str:            # --stdout of _tempod_service_argv
        return f"{self.log_dir}/tempod.out"

    @property
    def venv(self) -> str:              # _tempod_venv
        return f"{self.install_dir}/venv"

    @property
    def service_tool(self) -> str:      # tempod-service (and chrony_service_tool)
        return f"{self.venv}/bin/tempod-service"

    def tempod_service_argv(self) -> list[str]:
        """The role's ``_tempod_service_argv`` (process clock backend), action not included."""
        return [self.service_tool, "--config", self.config, "--profile", self.profile,
                "--pidfile", self.pidfile, "--stdout", self.stdout]

    # ---------------------------------------------------------------- chronyd (protocol ntp)
    @property
    def chrony_config(self) -> str:     # _chrony_config
        return f"{self.config_dir}/chrony.conf"

    @property
    def chrony_pidfile(self) -> str:    # _chrony_pidfile
        return f"{self.run_dir}/chronyd.pid"

    @property
    def chrony_own_pidfile(self) -> str:  # _chrony_own_pidfile (chrony.conf's pidfile, chronyd's own)
        return f"{self.run_dir}/chrony/chronyd-own.pid"

    @property
    def chrony_launcher(self) -> str:   # _chrony_launcher
        return f"{self.chrony_install_dir}/bin/chronyd-tempo"

    @property
    def chronyc(self) -> str:           # _chrony_chronyc
        return f"{self.chrony_install_dir}/bin/chronyc"

    @property
    def chrony_socket(self) -> str:     # _chrony_socket
        return f"{self.run_dir}/chrony/chronyd.sock"

    @property
    def chrony_stdout(self) -> str:     # _chrony_stdout
        return f"{self.log_dir}/chronyd.out"

    @property
    def chrony_log_dir(self) -> str:    # chrony.conf's logdir
        return f"{self.log_dir}/chrony"

    def chrony_service_argv(self) -> list[str]:
        """The chrony role's ``_chrony_service_argv``, action not included."""
        return [self.service_tool, "--daemon-cmd", f"/bin/sh {self.chrony_launcher}",
                "--config", self.chrony_config, "--profile", self.profile,
                "--pidfile", self.chrony_pidfile, "--stdout", self.chrony_stdout]

    # ---------------------------------------------------------------- the runner's own
    @property
    def deadman_dir(self) -> str:       # armed watchdogs (faults.guarded); gone at reboot
        return f"{self.run_dir}/deadman"

    @property
    def deadman_log(self) -> str:       # a JSON line per watchdog that fired
        return f"{self.log_dir}/deadman.jsonl"

    # ---------------------------------------------------------------- the lab
    @property
    def binds(self) -> dict[str, str]:
        """Folders the lab gives each node privately: name under ``nodes/<node>/`` ->
        mount point.  Everything above lives in one of them."""
        return {"opt": self.install_dir, "etc": self.config_dir, "log": self.log_dir,
                "run": self.run_dir}


#: The layout the roles deploy by default (their defaults/main.yml).
LAYOUT = NodeLayout()
