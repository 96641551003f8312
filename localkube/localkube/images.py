"""Container images built on this machine with buildah, from the project's own Dockerfiles.

No registry is reachable here but the package registries, so every image starts from files:
- `base`: a Debian root file system made by debootstrap from Debian's packages (Python 3.11
  from `python3`), the `PYTHON_IMAGE` the project's Dockerfiles build `FROM` here (Docker
  users keep their default, `python:3.11.7-slim-bookworm`);
- `trainer`, `serving`, `operator`: trainer_image/, serving_image/ and operator/Dockerfile;
- `pause`, `coredns` and `minio`: `FROM scratch` plus a binary built from the Go module proxy.

Each image is cached as an OCI archive under `~/.cache/mlcycle/images/<name>-<key>.tar`,
where the key hashes every input (Dockerfile, lock files, copied sources, base image): an
unchanged input rebuilds nothing. Builds run with a clean environment (the host's `PIP_*`
settings must not leak in) and see this machine's CA bundle at build time only, through a
bind mount that no layer keeps.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from localkube import build, versions
from localkube.paths import REPO_ROOT

DOCKERFILES = Path(__file__).resolve().parent.parent / "dockerfiles"
REGISTRY = "localkube.local"
SUITE = "bookworm"
# python-is-python3: the Dockerfiles say `python`; ca-certificates: as python:*-slim has.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile, the inputs its key hashes, and how it is built."""

    name: str
    dockerfile: Path
    inputs: tuple[str, ...] = ()  # paths under the repository root that the build copies
    on_base: bool = False  # FROM ${PYTHON_IMAGE}: built on the debootstrapped base
    binary: str | None = None  # a Go binary from localkube.build, copied into the context
    key_extra: tuple[str, ...] = field(default=())

    @property
    def repository(self) -> str:
        return f"{REGISTRY}/mlcycle/{self.name}"


SPECS: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("base", DOCKERFILES / "base.Dockerfile",
                  key_extra=(SUITE, "minbase", *BASE_PACKAGES)),
        ImageSpec("pause", DOCKERFILES / "pause.Dockerfile", binary="pause",
                  key_extra=(versions.PAUSE,)),
        ImageSpec("coredns", DOCKERFILES / "coredns.Dockerfile", binary="coredns",
                  key_extra=(versions.COREDNS,)),
        ImageSpec("minio", DOCKERFILES / "minio.Dockerfile", binary="minio",
                  key_extra=(versions.MINIO,)),
        ImageSpec("trainer", REPO_ROOT / "trainer_image" / "Dockerfile", on_base=True, inputs=(
            "requirements/runtime.lock", "contract/mlcycle_contract",
            "trainer_image/mlcycle_trainer")),
        ImageSpec("serving", REPO_ROOT / "serving_image" / "Dockerfile", on_base=True, inputs=(
            "requirements/runtime.lock", "contract/mlcycle_contract",
            "serving_image/mlcycle_serving")),
        ImageSpec("operator", REPO_ROOT / "operator" / "Dockerfile", on_base=True, inputs=(
            "pyproject.toml", "requirements/dev.lock", "requirements/runtime.lock",
            "contract/mlcycle_contract", "operator/mlcycle")),
    )
}
# What the node needs to run Pods at all (and `base`, a plain Python for anyone's Pods),
# the project's images, and what the chart runs besides them.
NODE_IMAGES = ("pause", "coredns", "base")
PROJECT_IMAGES = ("trainer", "serving", "operator")
CHART_IMAGES = ("operator", "minio")  # MLflow runs from the operator's image (mlflow[auth])
WORKLOAD_IMAGES = ("trainer", "serving")  # what the operator's Jobs and model servers run
# The base under a fixed name, for Pods that just need Python (examples/localkube/).
PYTHON_IMAGE = f"{REGISTRY}/python:3.11"


def cache_dir() -> Path:
    return build.cache_root().parent / "images"


def _files(relative: str) -> Iterator[Path]:
    path = REPO_ROOT / relative
    if path.is_file():
        yield path
        return
    for found in sorted(path.rglob("*")):
        if found.is_file() and "__pycache__" not in found.parts and found.suffix != ".pyc":
            yield found


def image_key(name: str) -> str:
    """A hash of everything the image is built from; the base's key is part of its users'."""
    spec = SPECS[name]
    digest = hashlib.sha256()
    digest.update(spec.dockerfile.read_bytes())
    for extra in spec.key_extra:
        digest.update(b"\0extra\0" + extra.encode())
    for relative in spec.inputs:
        for file in _files(relative):
            digest.update(b"\0file\0" + str(file.relative_to(REPO_ROOT)).encode() + b"\0")
            digest.update(file.read_bytes())
    if spec.on_base:
        digest.update(b"\0base\0" + image_key("base").encode())
    return digest.hexdigest()[:16]


def reference(name: str) -> str:
    """The image's name in buildah's storage and in the node's containerd."""
    return f"{SPECS[name].repository}:{image_key(name)}"


def _buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    storage = cache_dir() / "storage"
    # One run root per storage root: buildah keeps that storage's locks and state there.
    runroot = f"/run/mlcycle/buildah-{hashlib.sha256(str(storage).encode()).hexdigest()[:12]}"
    command = ["buildah", "--root", str(storage), "--runroot", runroot,
               "--storage-driver", "overlay", *args]
    result = subprocess.run(command, env=CLEAN_ENV, capture_output=True, text=True)
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise RuntimeError(f"buildah {args[0]} failed (exit {result.returncode}):\n{tail}")
    return result


def _in_storage(ref: str) -> bool:
    return _buildah("inspect", "--type", "image", ref, check=False).returncode == 0


@dataclass(frozen=True)
class Built:
    reference: str
    archive: Path


def ensure_image(name: str, progress: build.Progress = build.say) -> Built:
    """The image's reference and OCI archive, built when its key is not cached yet.

    The key is taken once, before the build: sources edited meanwhile make the next key."""
    spec = SPECS[name]
    ref = reference(name)
    archive = cache_dir() / f"{name}-{ref.rsplit(':', 1)[1]}.tar"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with open(archive.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.is_file():
            return Built(ref, archive)
        base = _ensure_base_in_storage(progress) if spec.on_base else None
        started = time.monotonic()
        progress(f"Building image {ref} from {spec.dockerfile.relative_to(REPO_ROOT)}")
        if name == "base":
            _build_base(ref, progress)
        elif spec.binary is not None:
            _build_from_binary(spec, ref, progress)
        else:
            _bud(spec, ref, REPO_ROOT, ["--build-arg", f"PYTHON_IMAGE={base}"])
        staging = archive.with_suffix(".tmp")
        staging.unlink(missing_ok=True)
        # zstd: a third faster than gzip here, and smaller; containerd 1.6 unpacks it.
        _buildah("push", "--compression-format", "zstd", ref, f"oci-archive:{staging}:{ref}")
        staging.rename(archive)
        _remove_stale(name, archive, ref)
        progress(f"Built image {ref} in {time.monotonic() - started:.0f} s")
    return Built(ref, archive)


def ensure_images(names: tuple[str, ...],
                  progress: build.Progress = build.say) -> dict[str, Built]:
    return {name: ensure_image(name, progress) for name in names}


def _ensure_base_in_storage(progress: build.Progress) -> str:
    """The base must be in buildah's storage for `FROM`; reload it from its archive if not."""
    archive = ensure_image("base", progress).archive
    ref = reference("base")
    if not _in_storage(ref):
        _buildah("pull", f"oci-archive:{archive}")
        if not _in_storage(ref):
            raise RuntimeError(f"{archive} did not load as {ref}")
    return ref


def _bud(spec: ImageSpec, ref: str, context: Path, extra: list[str]) -> None:
    mounts: list[str] = []
    if HOST_CA_BUNDLE.is_file():
        # pip reaches PyPI through TLS that only this machine's bundle verifies.
        mounts = ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    _buildah(
        "bud", "--isolation", "chroot", "--network", "host", "--pull=never", "--layers",
        "--ignorefile", str(DOCKERFILES / "dockerignore"), *mounts, *extra,
        "-f", str(spec.dockerfile), "-t", ref, str(context),
    )


def _build_from_binary(spec: ImageSpec, ref: str, progress: build.Progress) -> None:
    assert spec.binary is not None
    binary = build.ensure_binaries([spec.binary], progress)[spec.binary]
    with tempfile.TemporaryDirectory(prefix=f"image-{spec.name}-") as context:
        shutil.copy2(binary, Path(context) / spec.binary)
        _bud(spec, ref, Path(context), [])


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (it is reachable), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        text = source.read_text() if source.is_file() else ""
        match = re.search(r"^URIs:\s*(\S+/debian)\s*$", text, re.M) or re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)\s+\S+", text, re.M)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def _build_base(ref: str, progress: build.Progress) -> None:
    """debootstrap a minimal Debian with Python, then `FROM scratch` + `ADD rootfs.tar /`."""
    work = Path(tempfile.mkdtemp(prefix="base-", dir=cache_dir()))
    try:
        rootfs = work / "rootfs"
        progress(f"  debootstrap {SUITE} (minbase, {', '.join(BASE_PACKAGES)})")
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
             SUITE, str(rootfs), debian_mirror()],
            env=CLEAN_ENV, capture_output=True, text=True,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise RuntimeError(f"debootstrap failed (exit {result.returncode}):\n{tail}")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        subprocess.run(
            ["tar", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
             "--exclude=./sys/*", "-C", str(rootfs), "-cf", str(work / "rootfs.tar"), "."],
            check=True, env=CLEAN_ENV,
        )
        shutil.rmtree(rootfs)
        _bud(SPECS["base"], ref, work, [])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_stale(name: str, keep: Path, ref: str) -> None:
    """Older archives and tags of this image; the layers they share with it stay."""
    for old in cache_dir().glob(f"{name}-*.tar"):
        if old != keep:
            old.unlink(missing_ok=True)
    repository = ref.rsplit(":", 1)[0]
    listed = _buildah("images", "--format", "{{.Name}}:{{.Tag}}", check=False).stdout
    stale = [tag for tag in listed.split() if tag.rsplit(":", 1)[0] == repository and tag != ref]
    if stale:
        _buildah("rmi", *stale, check=False)


def main() -> None:
    """`python -m localkube images`: every image, built or found cached, with timings."""
    started = time.monotonic()
    for name in ("base", *NODE_IMAGES, *PROJECT_IMAGES, "minio"):
        built = ensure_image(name)
        size = built.archive.stat().st_size / 2**20
        print(f"{built.reference}: {built.archive} ({size:.0f} MiB)", flush=True)
    print(f"Images ready in {time.monotonic() - started:.0f} s", flush=True)

