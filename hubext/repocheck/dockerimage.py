"""What a Dockerfile's image will be, read without building it.

The Dockerfile is parsed with the `dockerfile` package (Docker's own parser),
so continuation lines, JSON forms and heredocs are read as Docker reads
them. `Walk` then goes through the final stage, with the stages it is built
FROM, and records in an `Image` what the rules need: the base image, ARG and
ENV values (so `${NB_USER}` resolves), the users and their uids, the last
USER, the COPY of the repository and its owner, `chown -R` runs, installed
Jupyter packages and the ENTRYPOINT.

Shell commands in RUN lines are not run, only read: installs are found by
the `pip`/`conda`/`mamba`/`micromamba`/`uv pip install` commands and the
requirements or environment files they name; users by
`useradd`/`adduser`/`usermod`; ownership by `COPY --chown` and `chown -R`.

Base images from Jupyter's docker-stacks (`jupyter/*` and
`quay.io/jupyter/*`) start with the user jovyan (uid 1000, home
/home/jovyan) and run as it; the `*-notebook` ones, and
`jupyterhub/singleuser`, also have Jupyter and JupyterHub.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from hubext.repocheck import Finding, ParserMissing, r2dfiles

JUPYTER_PACKAGES = ("notebook", "jupyterlab", "jupyterhub")
_STACKS = re.compile(r"(?:(?:quay\.io|docker\.io)/)?jupyter/([\w.-]+)")
_SINGLEUSER = re.compile(r"(?:(?:quay\.io|docker\.io)/)?jupyterhub/singleuser")
_INSTALL = re.compile(
    r"(?:^|[\s/])(?:pip[\d.]*|conda|mamba|micromamba)\s+(?:install|env\s+(?:create|update))\b"
    r"|(?:-m\s+pip|uv\s+pip)\s+install\b"
)
_PACKAGE = re.compile(
    r"(?:[\w-]+::)?(notebook|jupyterlab|jupyterhub)(?:\[[^\]]*\])?(?:[=<>!~].*)?"
)
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::?[-+]([^}]*))?\}|(\w+))")
_SEPARATORS = re.compile(r"&&|\|\||[;|\n]")


def parse(text: str):
    """The instructions of a Dockerfile; ParserMissing without the extra."""
    try:
        import dockerfile
    except ImportError:
        raise ParserMissing(
            "checking a Dockerfile needs the Dockerfile parser: pip install"
            " 'hubext[check]'"
        ) from None
    return dockerfile.parse_string(text)


def split_image(ref: str) -> tuple[str, str | None, str | None]:
    """'quay.io/jupyter/base-notebook:2024-01-01' to (name, tag, digest)."""
    ref, _, digest = ref.partition("@")
    name, tag = ref, None
    if ":" in ref.rsplit("/", 1)[-1]:
        name, tag = ref.rsplit(":", 1)
    return name, tag, digest or None


def short_name(name: str) -> str:
    """The name without docker.io/ or library/: 'python', 'rocker/r-ver'."""
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        name = name.removeprefix(prefix)
    return name


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def expand(text: str, env: dict) -> str | None:
    """$VAR and ${VAR:-default} as Docker expands them; None if unknown."""
    unknown = False

    def one(match):
        nonlocal unknown
        name = match.group(1) or match.group(3)
        if name in env:
            return env[name]
        if match.group(2) is not None and ":-" in match.group(0):
            return match.group(2)
        unknown = True
        return ""

    result = _VARIABLE.sub(one, text)
    return None if unknown else result


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


@dataclass
class Image:
    """What the walk over the instructions knows about the image so far."""

    base: str = ""  # the external image at the root of the final stage
    base_line: int = 0
    env: dict = field(default_factory=dict)
    users: dict = field(default_factory=lambda: {"root": 0})
    user: str = "root"
    user_line: int | None = None
    workdir: str = "/"
    installed: dict = field(default_factory=dict)  # package: line
    copies: list = field(default_factory=list)  # (line, dest, owner uid)
    chowns: list = field(default_factory=list)  # (line, uid, paths)
    entrypoint: tuple | None = None  # (command, line); None: inherited

    def uid(self, owner: str | None) -> int | None:
        """The uid of 'user', 'user:group', '1000' or None if unknown."""
        if not owner:
            return None
        name = owner.split(":", 1)[0]
        if name.isdigit():
            return int(name)
        return self.users.get(name)


def _stacks_defaults(image: Image, name: str) -> None:
    """docker-stacks images: jovyan, uid 1000, home /home/jovyan."""
    image.env.update(NB_USER="jovyan", NB_UID="1000", NB_GID="100", HOME="/home/jovyan")
    image.users["jovyan"] = 1000
    image.user = "1000"
    image.workdir = "/home/jovyan"
    stack = _STACKS.fullmatch(name)
    if _SINGLEUSER.fullmatch(name) or (stack and stack.group(1).endswith("notebook")):
        image.installed.update(dict.fromkeys(JUPYTER_PACKAGES, 0))


class Walk:
    """Runs through the final stage's instructions and checks each FROM."""

    def __init__(self, root: Path, layout, filename: str):
        self.root, self.layout, self.filename = root, layout, filename
        self.findings: list[Finding] = []

    def finding(self, line, severity, message):
        self.findings.append(Finding(self.filename, line, severity, message))

    def stages(self, commands) -> tuple[list, dict]:
        """Split into stages: [(FROM command, its instructions)], global ARGs."""
        stages, global_args = [], {}
        for command in commands:
            if command.cmd == "FROM":
                stages.append((command, []))
            elif stages:
                stages[-1][1].append(command)
            elif command.cmd == "ARG":
                for value in command.value:
                    key, eq, default = value.partition("=")
                    if eq:  # without a default, its value is unknown here
                        global_args[key] = _unquote(default)
        return stages, global_args

    def check_from(self, command, global_args, names) -> str | None:
        """The tag rule for one FROM; returns the image (None: unknown)."""
        raw = command.value[0] if command.value else ""
        ref = expand(raw, global_args)
        line = command.start_line
        if not raw:
            self.finding(line, "error", "FROM without an image")
            return None
        if ref is None:
            self.finding(
                line,
                "warning",
                f"FROM {raw}: cannot tell the image: give the ARG a default"
                " value before FROM",
            )
            return None
        if ref.lower() in names or ref == "scratch":
            return ref
        name, tag, digest = split_image(ref)
        if digest:
            return ref
        if tag is None:
            self.finding(
                line,
                "error",
                f"FROM {ref}: no tag; Binder needs a fixed base image: write"
                f" {name}:<version>, such as a dated tag",
            )
        elif tag == "latest":
            self.finding(
                line,
                "error",
                f"FROM {ref}: the tag latest moves; Binder needs a fixed base"
                f" image: write {name}:<version>, such as a dated tag",
            )
        return ref

    def run(self, commands) -> Image:
        stages, global_args = self.stages(commands)
        names, refs = {}, []
        for index, (command, _) in enumerate(stages):
            refs.append(self.check_from(command, global_args, names))
            words = [w.lower() for w in command.value]
            if len(words) >= 3 and words[1] == "as":
                names[words[2]] = index
        # the final stage and the stages it is built FROM, oldest first
        chain, index = [], len(stages) - 1
        while index is not None and index >= 0 and index not in chain:
            chain.insert(0, index)
            ref = refs[index]
            index = names.get(ref.lower()) if ref else None
        image = Image(env=dict(global_args))
        if stages:
            image.base = refs[chain[0]] or ""
            image.base_line = stages[chain[0]][0].start_line
        name = split_image(image.base)[0]
        if _STACKS.fullmatch(name) or _SINGLEUSER.fullmatch(name):
            _stacks_defaults(image, name)
        for i in chain:
            for command in stages[i][1]:
                self.instruction(image, command, global_args)
        return image

    def instruction(self, image: Image, command, global_args) -> None:
        env, line = image.env, command.start_line
        if not command.value and command.cmd in ("USER", "WORKDIR"):
            return  # Docker itself refuses these; nothing to learn
        if command.cmd == "ARG":
            for value in command.value:
                key, eq, default = value.partition("=")
                if eq:
                    env.setdefault(key, expand(_unquote(default), env) or "")
                elif key in global_args:
                    env.setdefault(key, global_args[key])
        elif command.cmd == "ENV":
            values = list(command.value)
            for key, value in zip(values[::2], values[1::2], strict=False):
                env[key] = expand(_unquote(value), env) or ""
        elif command.cmd == "USER":
            image.user = expand(command.value[0], env) or command.value[0]
            image.user_line = line
        elif command.cmd == "WORKDIR":
            path = expand(command.value[0], env) or command.value[0]
            image.workdir = posixpath.join(image.workdir, path)
        elif command.cmd in ("COPY", "ADD"):
            self.copy(image, command)
        elif command.cmd == "RUN":
            text = " ".join(command.value)
            text += "\n" + "\n".join(h.content for h in command.heredocs)
            self.shell(image, text, line)
        elif command.cmd == "ENTRYPOINT":
            image.entrypoint = (command, line)

    def copy(self, image: Image, command) -> None:
        flags = dict(f.lstrip("-").partition("=")[::2] for f in command.flags)
        if "from" in flags or len(command.value) < 2:
            return
        *sources, dest = command.value
        if not any(s.rstrip("/") in (".", "") for s in sources):
            return
        dest = expand(dest, image.env) or dest
        dest = posixpath.normpath(posixpath.join(image.workdir, dest))
        owner = expand(flags["chown"], image.env) if "chown" in flags else None
        image.copies.append((command.start_line, dest, owner))

    def shell(self, image: Image, text: str, line: int) -> None:
        for segment in _SEPARATORS.split(text):
            words = _words(expand(segment, image.env) or segment)
            if not words:
                continue
            if _INSTALL.search(segment):
                self.installs(image, words, line)
            program = posixpath.basename(words[0])
            if program in ("useradd", "adduser", "usermod"):
                self.account(image, words, program)
            elif program == "chown" and any(
                w in ("-R", "--recursive") or re.fullmatch(r"-\w*R\w*", w)
                for w in words
            ):
                rest = [w for w in words[1:] if not w.startswith("-")]
                if len(rest) >= 2:
                    image.chowns.append((line, rest[0], rest[1:]))

    def installs(self, image: Image, words: list[str], line: int) -> None:
        files = []
        for i, word in enumerate(words):
            for flag in ("-r", "--requirement", "-f", "--file"):
                if word == flag and i + 1 < len(words):
                    files.append(words[i + 1])
                elif word.startswith(flag + "=") or (
                    len(flag) == 2 and word.startswith(flag) and len(word) > 2
                ):
                    files.append(word[len(flag) :].lstrip("="))
            match = _PACKAGE.fullmatch(word)
            if match:
                image.installed.setdefault(match.group(1), line)
        for name in files:
            text = self.repo_file(name)
            for entry in (text or "").splitlines():
                entry = entry.split("#", 1)[0].strip().lstrip("-").strip()
                match = _PACKAGE.fullmatch(entry.split(" ", 1)[0]) if entry else None
                if match:
                    image.installed.setdefault(match.group(1), line)

    def repo_file(self, name: str) -> str | None:
        """A file named in a RUN line, looked up in the repository (by its
        path, then by its name at the root or in the binder folder)."""
        base = posixpath.basename(name)
        candidates = [name.lstrip("./")] if not name.startswith("/") else []
        candidates += [base, self.layout.path(base)]
        for candidate in candidates:
            path = self.root / candidate
            if candidate and path.is_file():
                return r2dfiles.read_text(path)
        return None

    def account(self, image: Image, words: list[str], program: str) -> None:
        uid = None
        for i, word in enumerate(words):
            value = None
            if word in ("-u", "--uid") and i + 1 < len(words):
                value = words[i + 1]
            elif word.startswith("--uid="):
                value = word[6:]
            elif re.fullmatch(r"-u\d+", word):
                value = word[2:]
            if value is not None and value.isdigit():
                uid = int(value)
        name = words[-1]
        if name.startswith("-") or (program == "usermod" and uid is None):
            return
        image.users[name] = uid
