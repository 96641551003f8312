"""Build the pinned Go binaries once and cache them under the user's cache directory.

The cache is keyed by family and version (`~/.cache/mlcycle/localkube/kubernetes-v1.36.3/`),
so a second run never rebuilds. Builds go to a temporary directory that is renamed into
place only when complete, under a file lock, so an interrupted or concurrent build never
leaves a half-written binary behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localkube import versions

GO_MODULES_DIR = Path(__file__).resolve().parent.parent / "go"

Progress = Callable[[str], None]


def say(message: str) -> None:
    """Default progress reporter: flushed at once, since builds and starts take a while."""
    print(message, flush=True)


@dataclass(frozen=True)
class Family:
    """Binaries built together from one wrapper module at one pinned version."""

    name: str
    version: str
    packages: dict[str, str]  # binary name -> Go package path
    ldflags: str = ""

    @property
    def module_dir(self) -> Path:
        return GO_MODULES_DIR / self.name


def _kubernetes_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = [
        f"-X {pkg}.{key}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in (
            ("gitVersion", version),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
            ("buildDate", "1970-01-01T00:00:00Z"),
        )
    ]
    return " ".join(stamps)


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "kubernetes",
            versions.KUBERNETES,
            {
                name: f"k8s.io/kubernetes/cmd/{name}"
                for name in (
                    "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl",
                    "kubelet", "kube-proxy",
                )
            },
            _kubernetes_ldflags(versions.KUBERNETES),
        ),
        Family("etcd", versions.ETCD, {"etcd": "go.etcd.io/etcd/server/v3"}),
        Family("minio", versions.MINIO, {"minio": "github.com/minio/minio"}),
        Family(
            "helm",
            versions.HELM,
            {"helm": "helm.sh/helm/v3/cmd/helm"},
            f"-X helm.sh/helm/v3/internal/version.version={versions.HELM}",
        ),
        Family("coredns", versions.COREDNS, {"coredns": "github.com/coredns/coredns"}),
        Family("pause", versions.PAUSE, {"pause": "mlcycle.dev/localkube/pause"}),
    )
}

# Which family builds each binary.
BINARY_FAMILY: dict[str, str] = {
    binary: family.name for family in FAMILIES.values() for binary in family.packages
}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlcycle" / "localkube"


def family_dir(family: Family) -> Path:
    return cache_root() / f"{family.name}-{family.version}"


def envtest_binaries() -> dict[str, Path]:
    """etcd and kube-apiserver from KUBEBUILDER_ASSETS, the envtest convention, if present."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return {}
    found = {name: Path(assets) / name for name in ("etcd", "kube-apiserver")}
    if all(path.is_file() and os.access(path, os.X_OK) for path in found.values()):
        return found
    return {}


def binary_path(name: str) -> Path:
    """Where a binary is (or will be) once built; envtest binaries take precedence."""
    envtest = envtest_binaries()
    if name in envtest:
        return envtest[name]
    return family_dir(FAMILIES[BINARY_FAMILY[name]]) / name


def ensure_binaries(names: list[str], progress: Progress = say) -> dict[str, Path]:
    """Return the paths of the named binaries, building the missing families first."""
    paths = {name: binary_path(name) for name in names}
    missing_families = sorted({BINARY_FAMILY[n] for n, p in paths.items() if not p.is_file()})
    for family_name in missing_families:
        build_family(FAMILIES[family_name], progress)
    return paths


def build_family(family: Family, progress: Progress = say) -> Path:
    """Build the family's missing binaries into its cache directory (no-op when cached).

    Binaries already cached are kept, so adding one to a family builds only that one."""
    target = family_dir(family)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{family.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [name for name in family.packages if not (target / name).is_file()]
        if not missing:
            return target
        if shutil.which("go") is None:
            raise RuntimeError("Go 1.26+ is needed to build the local cluster's binaries")
        staging = Path(tempfile.mkdtemp(prefix=f".{family.name}-", dir=target.parent))
        try:
            _go_build(family, missing, staging, progress)
            for name in family.packages:
                if name not in missing:
                    os.link(target / name, staging / name)
            staging.chmod(0o755)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _go_build(family: Family, binaries: list[str], out_dir: Path, progress: Progress) -> None:
    names = ", ".join(binaries)
    progress(
        f"Building {names} {family.version} from the Go module proxy "
        f"(cached in {family_dir(family)}; the first build takes minutes)"
    )
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly -buildvcs=false",
    }
    started = time.monotonic()
    for name in binaries:
        package = family.packages[name]
        command = ["go", "build", "-v", "-trimpath", "-ldflags", f"-s -w {family.ldflags}".strip()]
        command += ["-o", str(out_dir / name), package]
        _run_with_heartbeat(command, family.module_dir, env, name, progress)
    progress(f"Built {names} in {time.monotonic() - started:.0f} s")


def _run_with_heartbeat(
    command: list[str], cwd: Path, env: dict[str, str], label: str, progress: Progress
) -> None:
    """Run `go build -v`, reporting how many packages it compiled every 30 seconds."""
    started = time.monotonic()
    compiled = 0
    output: list[str] = []
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            elapsed = time.monotonic() - started
            progress(f"  ... {label}: {compiled} packages compiled, {elapsed / 60:.1f} min")

    threading.Thread(target=heartbeat, daemon=True).start()
    assert process.stdout is not None
    for line in process.stdout:
        compiled += 1
        output.append(line)
    done.set()
    if process.wait() != 0:
        tail = "".join(output[-30:])
        raise RuntimeError(f"go build of {label} failed (exit {process.returncode}):\n{tail}")
