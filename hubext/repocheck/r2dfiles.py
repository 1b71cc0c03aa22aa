"""repo2docker's configuration files: which ones count, and what each does.

repo2docker reads its files from `binder/` or `.binder/` if the repository
has one of these folders (and then ignores the root), otherwise from the
root; it refuses a repository with both folders. A Dockerfile there wins
over every other file. These rules decide what the rest of the check looks
at, so `locate` applies them once.

Scripts: repo2docker runs `chmod +x` on `postBuild` and `start` itself
before using them, so a file committed without the executable bit still
works on this hub; it is a warning because running `./postBuild` yourself,
or another builder, will fail. `start` is run with the server's command as
its arguments and must end by running it (`exec "$@"`), or the server never
starts.
"""

from __future__ import annotations

import re
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hubext.repocheck import Finding

MAX_SCRIPT_BYTES = 1024 * 1024

#: What each file does, in repo2docker's order of precedence.
DESCRIPTIONS = {
    "environment.yml": "conda environment: its packages are added to"
    " repo2docker's base environment (the name in the file is not used)",
    "Pipfile.lock": "Python packages pinned by pipenv, installed with pipenv",
    "Pipfile": "Python packages installed with pipenv",
    "requirements.txt": "Python packages installed with pip",
    "pyproject.toml": "the repository is installed as a Python package"
    " (pip install -e .)",
    "setup.py": "the repository is installed as a Python package (pip install -e .)",
    "Project.toml": "Julia environment: Julia and these packages are installed"
    " (versions pinned by Manifest.toml if there is one)",
    "JuliaProject.toml": "Julia environment: Julia and these packages are"
    " installed (versions pinned by Manifest.toml if there is one)",
    "install.R": "R script run at build time to install R packages",
    "DESCRIPTION": "the repository is installed as an R package"
    " (devtools::install_local)",
    "apt.txt": "Ubuntu packages installed with apt-get",
    "runtime.txt": "the runtime version",
    "default.nix": "nix packages",
    "postBuild": "script run once at the end of the build",
    "start": "script run at every server start, before the server",
}
_EXEC_ARGS = re.compile(r'^\s*exec\b.*"\$(?:@|\{@\})"')


@dataclass
class Layout:
    """Where repo2docker will read the configuration from."""

    folder: str  # "", "binder" or ".binder"
    dockerfile: str | None  # its path relative to the repository, if any
    findings: list[Finding] = field(default_factory=list)
    usable: bool = True  # False: repo2docker refuses the layout itself

    def path(self, name: str) -> str:
        return f"{self.folder}/{name}" if self.folder else name


def locate(root: Path) -> Layout:
    """Apply repo2docker's folder rule; note root files it will ignore."""
    folders = [d for d in ("binder", ".binder") if (root / d).is_dir()]
    if len(folders) == 2:
        message = (
            "the repository has both binder/ and .binder/; repo2docker refuses"
            " to build it: keep one of them"
        )
        return Layout("", None, [Finding(".", None, "error", message)], False)
    folder = folders[0] if folders else ""
    layout = Layout(folder, None)
    if (root / layout.path("Dockerfile")).is_file():
        layout.dockerfile = layout.path("Dockerfile")
    if folder:
        for name in ["Dockerfile", *DESCRIPTIONS]:
            if (root / name).is_file():
                layout.findings.append(
                    Finding(
                        name,
                        None,
                        "warning",
                        f"ignored: repo2docker reads only {folder}/ when that"
                        f" folder exists; move the file to {folder}/{name}",
                    )
                )
    return layout


def git_mode(root: Path, relative: str) -> int | None:
    """The file's mode as committed (0o100755 or 0o100644), else on disk;
    None if unknown. BinderHub builds from the commit, so git wins."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-s", "--", relative],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        return int(out.stdout.split()[0], 8)
    try:
        return (root / relative).stat().st_mode
    except OSError:
        return None


def read_text(path: Path) -> str | None:
    """A small text file, or None if it cannot be read as one."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SCRIPT_BYTES)
    except OSError:
        return None
    return data.decode("utf-8", "replace")


def commands(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line that is not blank or a comment."""
    return [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def exec_args_line(text: str) -> int | None:
    """The line that runs the given command in place (`exec ... "$@"`)."""
    for n, line in commands(text):
        if _EXEC_ARGS.match(line):
            return n
    return None


def _runtime(root: Path, layout: Layout, name: str) -> Finding:
    text = read_text(root / name) or ""
    value = text.strip().splitlines()[0].strip() if text.strip() else ""
    if (root / layout.path("environment.yml")).is_file() or (
        root / layout.path("Project.toml")
    ).is_file():
        return Finding(
            name,
            1,
            "warning",
            f"ignored ({value or 'empty'}): environment.yml and Project.toml"
            " set the version themselves",
        )
    match = re.fullmatch(r"python-(\d+(?:\.\d+)*)", value)
    if match:
        return Finding(name, 1, "info", f"Python {match.group(1)}")
    match = re.fullmatch(r"r-(?:(\d+\.\d+)-)?(\d{4}-\d\d-\d\d)", value)
    if match:
        version = f"R {match.group(1)}" if match.group(1) else "the latest R"
        return Finding(
            name, 1, "info", f"{version}, packages from the {match.group(2)} snapshot"
        )
    return Finding(
        name,
        1,
        "warning",
        f"{value or 'empty'}: not a runtime repo2docker knows; write python-3.12"
        " or r-4.4-2025-01-01",
    )


def _script(root: Path, name: str) -> list[Finding]:
    """The executable bit, and for `start` its last command."""
    found = []
    mode = git_mode(root, name)
    if mode is not None and not mode & stat.S_IXUSR:
        found.append(
            Finding(
                name,
                None,
                "warning",
                "not executable (git mode 644); repo2docker makes it executable"
                " before running it, but anything else running it will not:"
                f" git update-index --chmod=+x {name}",
            )
        )
    if name.endswith("start"):
        text = read_text(root / name) or ""
        lines = commands(text)
        if not lines or not _EXEC_ARGS.match(lines[-1][1]):
            found.append(
                Finding(
                    name,
                    lines[-1][0] if lines else None,
                    "error",
                    'the last command must be exec "$@": start is given the'
                    " server's command as arguments, and without it the server"
                    " never starts",
                )
            )
    return found


def check(root: Path, layout: Layout) -> list[Finding]:
    """One line per configuration file repo2docker will use, plus the
    problems in them; a Dockerfile is handled by `dockerfile_rules`."""
    if not layout.usable:
        return []
    found = []
    present = [n for n in DESCRIPTIONS if (root / layout.path(n)).is_file()]
    nix = "default.nix" in present
    for name in present:
        path = layout.path(name)
        if name == "runtime.txt":
            found.append(_runtime(root, layout, path))
            continue
        if nix and name not in ("default.nix", "postBuild", "start"):
            message = "ignored: with default.nix, nix installs everything"
            found.append(Finding(path, None, "warning", message))
            continue
        if name == "requirements.txt" and "environment.yml" in present:
            message = (
                "ignored: environment.yml takes precedence; list pip packages"
                " under pip: in environment.yml"
            )
            found.append(Finding(path, None, "warning", message))
            continue
        found.append(Finding(path, None, "info", DESCRIPTIONS[name]))
        if name == "default.nix":
            message = (
                "nix installs only what it lists: it must include Jupyter"
                " (notebook or jupyterlab) and jupyterhub, or the server"
                " cannot start"
            )
            found.append(Finding(path, None, "warning", message))
        if name in ("postBuild", "start"):
            found += _script(root, path)
    if (root / layout.path("REQUIRE")).is_file():
        message = "repo2docker no longer supports REQUIRE files; write a Project.toml"
        found.append(Finding(layout.path("REQUIRE"), None, "warning", message))
    if not present:
        message = (
            "no repo2docker configuration files: the image has repo2docker's"
            " default Python environment, with Jupyter and JupyterHub"
        )
        found.append(Finding(layout.folder or ".", None, "info", message))
    return found


def ignored_beside_dockerfile(
    root: Path, layout: Layout, dockerfile: str
) -> list[Finding]:
    """repo2docker ignores its other files when there is a Dockerfile,
    unless the Dockerfile uses them itself (names them)."""
    return [
        Finding(
            layout.path(name),
            None,
            "warning",
            f"ignored: {layout.dockerfile} builds the image; install what"
            " this file lists in the Dockerfile",
        )
        for name in DESCRIPTIONS
        if (root / layout.path(name)).is_file() and name not in dockerfile
    ]
