"""Container launcher: prepare the process's view of the host, then exec the command.

Run as root, already inside the pod's network namespace and a private mount
namespace (`ip netns exec` unshares the mount namespace and makes / rslave), as:

    python -I -S launch.py SPEC.json

It bind-mounts the pod's volumes and termination-message file at their paths
(creating missing mountpoints on the host), applies readOnly, drops to
runAsUser/runAsGroup, changes to the working directory and `execvpe`s the command,
so the container's pid is this process's pid. On failure it writes the reason to
`error_file` and exits 128, as a runtime reports `StartError`.

For exec probes, `enter_pid` makes it join a running container's network and mount
namespaces instead of mounting anything.

Standard library only: this file must not import the agent or third-party code.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import stat
import sys
from typing import Any

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000
CLONE_NEWNS = 0x20000
CLONE_NEWNET = 0x40000000
START_ERROR_EXIT = 128

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source is not None else None
    _check(_libc.mount(src, target.encode(), None, flags, None), f"mount {target}")


def unshare_mounts() -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    _mount(None, "/", MS_REC | MS_SLAVE)


def enter_namespaces(pid: int) -> None:
    net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    _check(_libc.setns(net, CLONE_NEWNET), "enter network namespace")
    _check(_libc.setns(mnt, CLONE_NEWNS), "enter mount namespace")
    os.close(net)
    os.close(mnt)


def _depth(mount: dict[str, Any]) -> int:
    return len([p for p in str(mount["target"]).split("/") if p])


def bind_mounts(mounts: list[dict[str, Any]]) -> None:
    # Open every source first: a mount over a parent directory (say a volume at /data
    # when the sources live under /data/...) must not hide the sources mounted after it.
    opened = []
    for m in sorted(mounts, key=_depth):
        fd = os.open(str(m["source"]), os.O_PATH | os.O_CLOEXEC)
        opened.append((fd, m))
    for fd, m in opened:
        target = str(m["target"])
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
            if not os.path.lexists(target):
                with open(target, "a"):
                    pass
        _mount(f"/proc/self/fd/{fd}", target, MS_BIND | MS_REC)
        if m.get("read_only"):
            _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY)
        os.close(fd)


def drop_privileges(uid: int | None, gid: int | None, groups: list[int]) -> None:
    if uid is None and gid is None:
        if groups:
            os.setgroups(groups)
        return
    if gid is None and uid is not None:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = 0
    os.setgroups(groups)
    if gid is not None:
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)


def run(spec: dict[str, Any]) -> None:
    if spec.get("enter_pid"):
        enter_namespaces(int(spec["enter_pid"]))
    else:
        if spec.get("unshare_mount"):
            unshare_mounts()
        bind_mounts(list(spec.get("mounts") or []))
    cwd = str(spec.get("cwd") or "/")
    os.makedirs(cwd, exist_ok=True)
    drop_privileges(spec.get("uid"), spec.get("gid"), [int(g) for g in spec.get("groups") or []])
    os.chdir(cwd)
    argv = [str(a) for a in spec["argv"]]
    env = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        where = "" if "/" in argv[0] else " in $PATH"
        raise RuntimeError(f'exec: "{argv[0]}": executable file not found{where}') from None
    except PermissionError:
        who = f"uid {os.getuid()}, gid {os.getgid()}"
        raise RuntimeError(f'exec: "{argv[0]}": permission denied (running as {who})') from None


def main(args: list[str]) -> None:
    with open(args[0]) as fh:
        spec = json.load(fh)
    if spec.get("unlink_spec"):
        os.unlink(args[0])
    err_fd = -1
    if spec.get("error_file"):
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        err_fd = os.open(spec["error_file"], flags, 0o600)
    try:
        run(spec)
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        if err_fd >= 0:
            os.write(err_fd, message.encode("utf-8", "replace"))
        sys.stderr.write(f"localkube: failed to start container: {message}\n")
        sys.stderr.flush()
        os._exit(START_ERROR_EXIT)


if __name__ == "__main__":
    main(sys.argv[1:])
