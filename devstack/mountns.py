"""A container's filesystem view and identity, as commands (pure).

The test kubelet has no container runtime, so it gives each container what
a runtime would, with plain Linux tools run as root: a private mount
namespace (`unshare -m`) in which each volumeMount is bind-mounted at its
`mountPath`, then `setpriv` to the container's uid, gid and supplementary
groups before the program runs. `kubectl exec` is `nsenter` into that
namespace followed by the same `setpriv`.

Mount points must exist, but this machine's `/home` or `/etc` must not be
changed, so a missing parent is covered inside the namespace only: `/home`
by an empty tmpfs (the host's users' homes are not the image's), any other
directory by an overlay whose writable layer lives in the pod's scratch
directory. The host's `/` is never covered.

Everything here builds argv lists and a POSIX sh script; nothing runs.
"""

import posixpath
import shlex
from dataclasses import dataclass

# The Binder image contract: the notebook user's home (repo2docker and the
# Jupyter docker stacks both use jovyan). The pod's per-pod home directory is
# bind-mounted here unless the container sets HOME itself.
IMAGE_HOME = "/home/jovyan"
HOME_ROOT = "/home"


@dataclass(frozen=True)
class Mount:
    """One bind mount: a host path shown at `target` inside the container."""

    source: str
    target: str
    read_only: bool = False
    is_file: bool = False


@dataclass(frozen=True)
class Identity:
    """Who a container's processes run as; uid None or 0 is root."""

    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()
    no_new_privs: bool = False

    @property
    def is_root(self) -> bool:
        return not self.uid


def identity(pod: dict, container: dict) -> Identity:
    """The container's user, from its securityContext over the pod's.

    As on Kubernetes: `runAsUser`/`runAsGroup` of the container win over the
    pod's; a uid without a gid gets group 0; `fsGroup` and
    `supplementalGroups` of the pod become supplementary groups.
    """
    pod_ctx = pod["spec"].get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup"))
    if uid is not None and gid is None:
        gid = 0
    groups = []
    for group in [pod_ctx.get("fsGroup"), *(pod_ctx.get("supplementalGroups") or [])]:
        if group is not None and group not in groups:
            groups.append(int(group))
    return Identity(
        uid=None if uid is None else int(uid),
        gid=None if gid is None else int(gid),
        groups=tuple(groups),
        no_new_privs=ctx.get("allowPrivilegeEscalation") is False,
    )


def container_mounts(container: dict, volume_paths: dict) -> tuple[list, list]:
    """The container's volumeMounts as `Mount`s, and the names left out.

    `volume_paths` maps a volume name to its host directory, or to None for
    a volume the kubelet could not provide (an unknown type); mounts of
    those are returned in the second list so the caller can log them.
    """
    mounts, skipped = [], []
    for vm in container.get("volumeMounts") or []:
        source = volume_paths.get(vm["name"])
        if source is None:
            skipped.append(vm["name"])
            continue
        source = str(source)
        if vm.get("subPath"):
            source = posixpath.join(source, vm["subPath"])
        mounts.append(
            Mount(
                source, posixpath.normpath(vm["mountPath"]), vm.get("readOnly", False)
            )
        )
    return mounts, skipped


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def cover_for(target: str, exists, scratch: str) -> tuple[str, str] | None:
    """How to make room for a missing mount point: ("tmpfs"|"overlay", dir).

    None when the only existing ancestor is `/`, or covering it would hide
    the kubelet's own scratch directory (where every volume lives).
    """
    if _under(target, HOME_ROOT) and target != HOME_ROOT and exists(HOME_ROOT):
        return ("tmpfs", HOME_ROOT)
    parent = posixpath.dirname(target)
    while parent != "/" and not exists(parent):
        parent = posixpath.dirname(parent)
    if parent == "/" or _under(scratch, parent):
        return None
    return ("overlay", parent)


def setup_script(mounts: list, scratch: str, exists, workdir: str = "/") -> str:
    """The sh script that builds the namespace, then runs `"$@"`.

    Mounts are made parents first. `exists(path)` says whether a path exists
    on the host (injected, so this stays pure); `scratch` is a per-pod
    directory for overlay layers and the mount tables.

    A runtime mounts with system calls; a program run per mount costs a pod
    a millisecond of CPU each, more for pods with more volumes. So the
    mounts go into a table (fstab format) that one `mount -a` makes, in
    order, creating missing directories (`X-mount.mkdir`); mounts of single
    files, whose empty target file must exist first, follow in a second
    table. `printf`, `[` and `:` are the shell's own.
    """
    quoted_scratch = shlex.quote(scratch)
    lines = ["set -e", f"[ -d {quoted_scratch} ] || mkdir -p {quoted_scratch}"]
    writable: list[str] = []  # made by us in the namespace: mkdir is safe
    overlays = 0
    first: list[str] = []  # covers and directories, in order
    files: list[Mount] = []  # single files, after every directory
    for mount in sorted(mounts, key=lambda m: m.target.count("/")):
        target = mount.target
        if not any(_under(target, w) for w in writable) and not exists(target):
            cover = cover_for(target, exists, scratch)
            if cover is None:
                lines.append(f"echo {shlex.quote(_no_room(target))} >&2")
                continue
            first.append(_cover(*cover, f"{scratch}/overlay{overlays}", lines))
            overlays += cover[0] == "overlay"
            writable.append(cover[1])
        if mount.is_file:
            files.append(mount)
        else:
            first.append(
                _table_line(mount.source, target, "none", _bind_options(mount))
            )
        writable.append(target)
    lines.extend(_mount_all(first, f"{scratch}/fstab-dirs"))
    for mount in files:
        parent = shlex.quote(posixpath.dirname(mount.target))
        dst = shlex.quote(mount.target)
        lines += [f"[ -d {parent} ] || mkdir -p {parent}", f"[ -e {dst} ] || : > {dst}"]
    table = [
        _table_line(m.source, m.target, "none", _bind_options(m, mkdir=False))
        for m in files
    ]
    lines.extend(_mount_all(table, f"{scratch}/fstab-files"))
    lines.append(f"cd {shlex.quote(workdir)} 2>/dev/null || cd /")
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def _cover(kind: str, path: str, layer: str, lines: list) -> str:
    """The table line covering `path`: an empty tmpfs, or an overlay whose
    writable layer is `layer` (its directories made by a line added to
    `lines`)."""
    if kind == "tmpfs":
        return _table_line("hubext-home", path, "tmpfs", "mode=755")
    lines.append(f"mkdir -p {shlex.quote(layer)}/upper {shlex.quote(layer)}/work")
    opts = f"lowerdir={path},upperdir={layer}/upper,workdir={layer}/work"
    return _table_line("overlay", path, "overlay", opts)


def _bind_options(mount: Mount, mkdir: bool = True) -> str:
    options = ["bind"] + (["X-mount.mkdir"] if mkdir else [])
    return ",".join(options + (["ro"] if mount.read_only else []))


def _table_line(source: str, target: str, kind: str, options: str) -> str:
    """One fstab line; blanks and backslashes in paths escaped as octal."""
    return " ".join(
        [_fstab_escape(source), _fstab_escape(target), kind, options, "0 0"]
    )


def _fstab_escape(path: str) -> str:
    for char in "\\ \t\n":
        path = path.replace(char, f"\\{ord(char):03o}")
    return path


def _mount_all(table: list[str], path: str) -> list[str]:
    """Lines writing `table` to `path` and making its mounts with one
    `mount -a` (it reads a file: a here-document is a pipe it refuses)."""
    if not table:
        return []
    quoted = " ".join(shlex.quote(line) for line in table)
    return [
        f"printf '%s\\n' {quoted} > {shlex.quote(path)}",
        f"mount -a --fstab {shlex.quote(path)}",
    ]


def _no_room(target: str) -> str:
    return (
        f"test kubelet: no mount point for {target}: its only existing "
        "parent is / (left unmounted)"
    )


def setpriv_argv(who: Identity) -> list[str]:
    """`setpriv` switching to `who` (root: no switch), and asking the kernel
    to kill the program when its parent, the kubelet, dies.

    `setpriv` sets that signal after the switch, which clears one set
    before; and the kubelet need not set it itself in a `preexec_fn`, for
    which Python forks its whole memory rather than vfork (tens of
    milliseconds of the kubelet's one event loop per container).
    """
    argv = ["setpriv", "--pdeathsig", "KILL"]
    if who.is_root:
        return argv + ["--"]
    gid = 0 if who.gid is None else who.gid
    argv += [f"--reuid={who.uid}", f"--regid={gid}"]
    if who.groups:
        argv.append("--groups=" + ",".join(str(g) for g in who.groups))
    else:
        argv.append("--clear-groups")
    if who.no_new_privs:
        argv.append("--no-new-privs")
    return argv + ["--"]


def run_argv(script: str, who: Identity, argv: list[str]) -> list[str]:
    """Run `argv` as `who` in a new private mount namespace set up by `script`."""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "hubext-container",
        *setpriv_argv(who),
        *argv,
    ]


def exec_argv(pid: int, who: Identity, argv: list[str]) -> list[str]:
    """Run `argv` as `who` inside the mount namespace of process `pid`."""
    return ["nsenter", f"--target={pid}", "--mount", "--wd", *setpriv_argv(who), *argv]
