"""Binder's rules for a Dockerfile, checked before BinderHub builds it.

The hub starts `jupyterhub-singleuser` in the image as uid 1000, with the
command given as arguments to the image's ENTRYPOINT. So the image needs:

1. a base image with a tag that is not `latest` (a moving base makes the
   cached image and a rebuild differ);
2. `jupyterhub` and `notebook` or `jupyterlab` installed;
3. a user with uid 1000, which the image ends as;
4. the repository copied to that user's home and owned by it, so that
   notebooks can be saved;
5. an ENTRYPOINT, if any, that runs the command it is given (`exec "$@"`).

The tag rule is checked on each FROM as it is read (`dockerimage`), the
others here on the `Image` the walk leaves. For a base image that is
neither a Jupyter one nor a well-known plain image (python, ubuntu,
conda...), this check cannot tell what it has, so missing packages are a
warning rather than an error.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from hubext.repocheck import Finding, ParserMissing, r2dfiles
from hubext.repocheck.dockerimage import (
    Image,
    Walk,
    expand,
    parse,
    short_name,
    split_image,
)

#: Images known to have no Jupyter: missing packages are then an error.
_PLAIN = re.compile(
    r"(?:python|ubuntu|debian|alpine|buildpack-deps|fedora|centos|rockylinux"
    r"|almalinux|busybox|scratch|r-base|julia|node|continuumio/[\w.-]+"
    r"|condaforge/[\w.-]+|mambaorg/micromamba|nvidia/cuda|rocker/[\w.-]+)"
)
_ENTRYPOINT_WRAPPERS = ("tini", "dumb-init", "start.sh")


def _home(image: Image) -> str | None:
    """$HOME of the final user: ENV HOME, else /home/NAME as useradd -m
    makes it; None for a uid with no known name."""
    if "HOME" in image.env:
        return image.env["HOME"]
    uid = image.uid(image.user)
    names = [n for n, u in image.users.items() if u == uid and u is not None]
    return f"/home/{names[-1]}" if names and uid != 0 else None


def _check_packages(walk: Walk, image: Image) -> None:
    missing = []
    if "jupyterhub" not in image.installed:
        missing.append("jupyterhub")
    if "notebook" not in image.installed and "jupyterlab" not in image.installed:
        missing.append("notebook or jupyterlab")
    if not missing:
        return
    what = " and ".join(missing)
    names = [m.split()[-1] for m in missing]  # jupyterhub, jupyterlab
    fix = f"add RUN python3 -m pip install --no-cache-dir {' '.join(names)}"
    plain = _PLAIN.fullmatch(short_name(split_image(image.base)[0]))
    if plain:
        walk.finding(
            image.base_line or None,
            "error",
            f"{what} not installed: the hub starts jupyterhub-singleuser in"
            f" the image; {fix}",
        )
    else:
        walk.finding(
            image.base_line,
            "warning",
            f"{what} not installed by a RUN line, and hubext cannot tell"
            f" whether {image.base or 'the base image'} has them; if not, {fix}",
        )


def _check_user(walk: Walk, image: Image) -> None:
    uid = image.uid(image.user)
    if uid == 1000:
        return
    if uid == 0:
        where = (
            f"USER {image.user}" if image.user_line else "there is no USER instruction"
        )
        walk.finding(
            image.user_line or image.base_line or None,
            "error",
            f"the image runs as root ({where}); Binder runs the server as uid"
            " 1000: create the user (useradd -m -u 1000 jovyan) and end with"
            " USER 1000",
        )
    elif image.user.split(":", 1)[0] in image.users:
        walk.finding(
            image.user_line,
            "error",
            f"USER {image.user}: the user is not created with uid 1000; Binder"
            " runs the server as uid 1000: add -u 1000 (--uid 1000) where it is"
            " created",
        )
    else:
        walk.finding(
            image.user_line,
            "warning",
            f"USER {image.user}: cannot tell its uid; Binder runs the server as"
            " uid 1000: create it with useradd -u 1000, or write USER 1000",
        )


def _covers(path: str, dest: str) -> bool:
    path = posixpath.normpath(path)
    return dest == path or dest.startswith(path.rstrip("/") + "/")


def _check_copy(walk: Walk, image: Image) -> None:
    home = _home(image)
    if not image.copies:
        walk.finding(
            None,
            "warning",
            "the repository is not copied into the image (no COPY . ...); the"
            " server starts without its files: add COPY --chown=1000:100 ."
            f" {home or '/home/jovyan'}",
        )
        return
    line, dest, owner = image.copies[-1]
    if home and image.uid(image.user) == 1000 and not _covers(home, dest):
        walk.finding(
            line,
            "warning",
            f"the repository is copied to {dest}, not to the home directory"
            f" {home}, where the server starts",
        )
    if image.uid(owner) == 1000:
        return
    for chown_line, who, paths in image.chowns:
        if chown_line > line and image.uid(who) == 1000:
            if any(_covers(expand(p, image.env) or p, dest) for p in paths):
                return
    who = f"{owner}, not uid 1000" if owner else "root"
    walk.finding(
        line,
        "error",
        f"the repository's files in {dest} belong to {who}, so notebooks"
        " cannot be saved: write COPY --chown=1000:100 (or --chown=${NB_USER}),"
        f" or RUN chown -R 1000 {dest} after the COPY",
    )


def _check_entrypoint(walk: Walk, image: Image) -> None:
    if image.entrypoint is None:
        return
    command, line = image.entrypoint
    if not command.json:
        walk.finding(
            line,
            "error",
            "ENTRYPOINT in shell form ignores the command the hub gives the"
            ' image; write the exec form, ENTRYPOINT ["/path/script"], with a'
            ' script that ends with exec "$@"',
        )
        return
    words = [w for w in command.value if w != "--" and not w.startswith("-")]
    if not words or posixpath.basename(words[-1]) in _ENTRYPOINT_WRAPPERS:
        return
    program = words[-1]
    if posixpath.basename(words[0]) in _ENTRYPOINT_WRAPPERS[:2]:
        return  # tini/dumb-init run what follows, with the arguments
    source = _copied_from(image, walk, program)
    text = r2dfiles.read_text(walk.root / source) if source else None
    if text is None:
        walk.finding(
            line,
            "warning",
            f"ENTRYPOINT {program}: not a file of this repository, so hubext"
            ' cannot check it; it must run the command it is given (exec "$@")',
        )
        return
    if r2dfiles.exec_args_line(text) is None:
        last = r2dfiles.commands(text)
        walk.findings.append(
            Finding(
                source,
                last[-1][0] if last else None,
                "error",
                f"the ENTRYPOINT script ({walk.filename} line {line}) never"
                ' runs the command it is given: end it with exec "$@", or the'
                " server never starts",
            )
        )


def _copied_from(image: Image, walk: Walk, program: str) -> str | None:
    """The repository file an ENTRYPOINT path comes from: by its name, at
    the root, in the binder folder or where `COPY . dest` put the repo."""
    base = posixpath.basename(program)
    program = posixpath.normpath(posixpath.join(image.workdir, program))
    for _, dest, _ in image.copies:
        if _covers(dest, program):
            relative = posixpath.relpath(program, dest)
            if (walk.root / relative).is_file():
                return relative
    for candidate in (walk.layout.path(base), base):
        if (walk.root / candidate).is_file():
            return candidate
    return None


def check(root: Path, layout) -> list[Finding]:
    """The findings for `layout.dockerfile`; ParserMissing without the parser."""
    filename = layout.dockerfile
    text = r2dfiles.read_text(root / filename)
    walk = Walk(root, layout, filename)
    if text is None:
        return [Finding(filename, None, "error", "cannot read the file")]
    try:
        commands = parse(text)
    except ParserMissing:
        raise
    except Exception as e:  # the Go parser's error type is not public
        return [Finding(filename, None, "error", f"Docker cannot parse it: {e}")]
    if not any(c.cmd == "FROM" for c in commands):
        return [Finding(filename, None, "error", "no FROM instruction")]
    image = walk.run(commands)
    _check_packages(walk, image)
    _check_user(walk, image)
    _check_copy(walk, image)
    _check_entrypoint(walk, image)
    found = sorted(walk.findings, key=lambda f: (f.file != filename, f.line or 0))
    built = Finding(
        filename, None, "info", "the image is built from this Dockerfile alone"
    )
    return [built, *r2dfiles.ignored_beside_dockerfile(root, layout, text), *found]
