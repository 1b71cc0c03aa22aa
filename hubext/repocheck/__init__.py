"""`hubext check`: what in a repository would break a launch on this hub.

Repository authors otherwise learn only on the launch page, after a build,
that their `.resources` is refused or their Dockerfile cannot run the hub's
server. `check_repository` looks at a local checkout the way the hub and
repo2docker will and returns `Finding`s, each tied to a file and, where it
can be, a line:

- `error`: the launch fails, or the server starts unusable;
- `warning`: likely wrong, or something this check cannot confirm;
- `info`: what a file will do (repo2docker's configuration files).

Only errors should fail a CI job; the CLI's exit status follows that rule.
The rules for Dockerfiles are in `dockerfile_rules` (reading the Dockerfile
in `dockerimage`), those for repo2docker's folders and other files in
`r2dfiles`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from hubext.resources import ResourceFileError, ResourcePolicy, parse_resources

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One thing to tell the author, at `file` (relative to the repository,
    "." for the repository as a whole) and `line` (1-based, or None)."""

    file: str
    line: int | None
    severity: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.message}"

    def as_dict(self) -> dict:
        return asdict(self)


class ParserMissing(RuntimeError):
    """The Dockerfile parser (the `check` extra) is not installed."""


def summary(findings: list[Finding]) -> dict:
    """Counts per severity; `ok` is true when nothing would break a launch."""
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    return {**counts, "ok": counts["error"] == 0}


def summary_line(findings: list[Finding]) -> str:
    """'1 error, 2 warnings, 3 notes: this repository will not launch'."""
    counts = summary(findings)

    def plural(n, word):
        return f"{n} {word}{'' if n == 1 else 's'}"

    text = ", ".join(
        [
            plural(counts["error"], "error"),
            plural(counts["warning"], "warning"),
            plural(counts["info"], "note"),
        ]
    )
    if counts["ok"]:
        return f"{text}: nothing found that would break a launch"
    return f"{text}: fix the errors before launching"


def check_resources(
    root: Path, policy: ResourcePolicy, name: str = ".resources"
) -> list[Finding]:
    """The `.resources` file with the hub's own parser, so that the verdict is
    the one the launch page would give."""
    path = root / name
    try:
        with path.open("rb") as f:
            data = f.read(policy.max_file_bytes + 1)
    except FileNotFoundError:
        return []
    except OSError as e:
        return [Finding(name, None, "error", f"cannot read the file: {e.strerror}")]
    try:
        resources = parse_resources(data, policy, filename=name)
    except ResourceFileError as e:
        return [Finding(name, e.line, "error", e.reason)]
    return [
        Finding(name, None, "info", f"valid: the server gets {resources.summary()}")
    ]


def check_repository(
    root: str | Path,
    policy: ResourcePolicy | None = None,
    resources_file: str = ".resources",
) -> list[Finding]:
    """Every finding for the checkout at `root`, in a stable order: the
    `.resources` file, then the build (a Dockerfile, or repo2docker's files).

    Raises `ParserMissing` if there is a Dockerfile and the parser is not
    installed, NotADirectoryError if `root` is not a directory.
    """
    from hubext.repocheck import dockerfile_rules, r2dfiles

    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    findings = check_resources(root, policy or ResourcePolicy(), resources_file)
    layout = r2dfiles.locate(root)
    findings += layout.findings
    if layout.dockerfile is not None:
        findings += dockerfile_rules.check(root, layout)
    else:
        findings += r2dfiles.check(root, layout)
    return findings
