"""Where the local cluster keeps its files: `.local/` at the repository root (git-ignored),
or `$LOCALKUBE_DIR` when set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LocalPaths:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / "cluster.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def kubeconfig_for(self, user: str) -> Path:
        return self.pki / f"{user}.kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def volumes(self) -> Path:
        """The directories of the PersistentVolumes the provisioner makes."""
        return self.root / "volumes"

    @property
    def kill_points(self) -> Path:
        """Where the fault-injection tests arm the operator's kill points (mlcycle.faults),
        which it records there as they fire; no file, no kill point. The chart's operator
        Pod mounts its directory."""
        return self.root / "faults" / "kill-points.json"

    @property
    def bin(self) -> Path:
        return self.root / "bin"


def local_paths() -> LocalPaths:
    return LocalPaths(Path(os.environ.get("LOCALKUBE_DIR") or REPO_ROOT / ".local"))
