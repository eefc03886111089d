"""Where the controller's files live on this machine: one object for every path the
tool reads or writes outside a node.

Owns the choice of the *project folder* -- the folder that holds ``results/``, the
generated lab inventories under ``inventory/``, the deployment secrets in
``.secrets/`` and, in a checkout, ``playbooks/``, ``roles/`` and ``ansible.cfg`` --
and the lab state root (``/var/lib/tempo-lab``, outside the project: the labs belong
to the host).  The project folder is, in this order:

1. ``$TEMPO_HOME`` when it is set;
2. the repository checkout when ``tempolab`` is imported from one (``pip install -e``,
   ``PYTHONPATH=experiments``): ``tempo run`` in a checkout writes to its ``results/``
   wherever the shell stands, as before;
3. the current directory otherwise (an installed package), never site-packages.

It knows nothing of what the files contain; every other module asks it instead of
working paths out from its own ``__file__``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .lab import plan

ENV_HOME = "TEMPO_HOME"
#: ``experiments/tempolab`` -> the checkout two levels up
_PACKAGE_DIR = Path(__file__).resolve().parent


def checkout_of(package_dir: Path) -> Path | None:
    """The repository checkout that holds ``package_dir`` (…/experiments/tempolab), or
    None when the package was installed elsewhere (site-packages has no playbooks)."""
    root = package_dir.parent.parent
    if (root / "pyproject.toml").is_file() and (root / "playbooks").is_dir():
        return root
    return None


@dataclass(frozen=True)
class ProjectPaths:
    root: Path
    lab_state: Path = plan.STATE_ROOT

    @classmethod
    def discover(cls, *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 package_dir: Path = _PACKAGE_DIR) -> "ProjectPaths":
        env = os.environ if env is None else env
        if env.get(ENV_HOME):
            return cls(Path(env[ENV_HOME]).expanduser().resolve())
        root = checkout_of(package_dir)
        return cls(root if root is not None else Path.cwd() if cwd is None else Path(cwd))

    @property
    def results(self) -> Path:
        """Run folders ``<stamp>-<suite>/`` and comparisons go here (``--out`` overrides)."""
        return self.root / "results"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory"

    def lab_inventory(self, lab_name: str) -> Path:
        """The inventory ``tempo lab up --name lab_name`` writes."""
        return plan.inventory_path(lab_name, self.root)

    def playbook(self, name: str) -> Path:
        return self.root / "playbooks" / f"{name}.yml"

    @property
    def ansible_cfg(self) -> Path:
        return self.root / "ansible.cfg"

    @property
    def secrets(self) -> Path:
        """``.secrets/``: the role generates the group key here when none is given
        (``tempod_auth_key_file``: ``playbook_dir | dirname``/.secrets/tempo.key, the
        project folder since the playbooks are its ``playbooks/``)."""
        return self.root / ".secrets"

    @property
    def auth_key_file(self) -> Path:
        return self.secrets / "tempo.key"

    def ansible_env(self, **extra: str) -> dict[str, str]:
        """The environment for ansible-playbook: the project's ansible.cfg (it sets the
        roles path and the SSH options the lab needs)."""
        return dict(os.environ, ANSIBLE_CONFIG=str(self.ansible_cfg), **extra)


def project_paths() -> ProjectPaths:
    """The paths for this process (looked up on each call: cheap, and tests may set
    ``TEMPO_HOME`` or change directory)."""
    return ProjectPaths.discover()
