"""The `hubext` command line, for repo authors and admins.

`hubext resources check [PATH] [--policy FILE] [--json]` checks a
`.resources` file exactly as the hub will at launch. Exit status: 0 the file
is usable (or missing: the defaults apply), 1 the file is invalid, 2 the
check could not run (bad policy file, unreadable path, bad arguments).

`hubext check [PATH]` checks a whole repository checkout: its `.resources`
and its Dockerfile or repo2docker files (see hubext.repocheck); the same
exit statuses, where 1 means at least one error (warnings and notes alone
exit 0).

Subcommands are registered in `build_parser`; each is a function taking the
parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

import yaml

from hubext import __version__, chart, repocheck
from hubext.resources import (
    KEYS,
    ResourceFileError,
    ResourcePolicy,
    format_number,
    parse_resources,
)

EXIT_OK, EXIT_INVALID, EXIT_CANNOT_CHECK = 0, 1, 2
POLICY_TIMEOUT = 10  # seconds, for --policy-url
POLICY_MAX_BYTES = 64 * 1024

_DESCRIBE = {
    "gpu": "GPUs",
    "cpur": "CPU request, cores",
    "cpul": "CPU limit, cores",
    "memr": "RAM request, GB (1 GB = 1024**3 bytes)",
    "meml": "RAM limit, GB (1 GB = 1024**3 bytes)",
}


class CannotCheck(Exception):
    """The check could not run at all; the message says why (exit 2)."""


def _policy_from_text(text: str, source: str) -> tuple[ResourcePolicy, str | None]:
    """A policy from YAML (or JSON, a subset of it); `source` names it in
    errors. Also the name of the resources file, when the document gives
    one (`resources_file`, as a hub's published policy does)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CannotCheck(f"{source}: the policy file is not valid YAML: {e}") from None
    resources_file = None
    if isinstance(data, dict) and "resources_file" in data:
        data = dict(data)
        resources_file = _checked_file_name(data.pop("resources_file"), source)
    try:
        return ResourcePolicy.from_dict(data), resources_file
    except ValueError as e:
        raise CannotCheck(f"{source}: {e}") from None


def _checked_file_name(name, source: str) -> str:
    """A policy's `resources_file`: a path inside the repository, since the
    check reads it from the checkout (a policy URL may answer anything)."""
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    if not parts or name.startswith("/") or ".." in parts or len(name) > 255:
        raise CannotCheck(
            f"{source}: resources_file must be a file name inside the repository,"
            f" such as .resources, not {name!r}"
        )
    return name


def load_policy(path: str | None) -> tuple[ResourcePolicy, str | None]:
    """The site policy from a YAML file, or the built-in one without a file;
    and the resources file name the file gives, if any."""
    if path is None:
        return ResourcePolicy(), None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CannotCheck(f"{path}: cannot read the policy file: {e}") from None
    return _policy_from_text(text, path)


def fetch_policy(
    url: str, timeout: float = POLICY_TIMEOUT
) -> tuple[ResourcePolicy, str | None]:
    """The policy a hub publishes at `url` (JSON or YAML; `hubext.policypage`),
    read with a timeout and at most POLICY_MAX_BYTES, so a wrong URL fails
    fast; and the resources file name it gives."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CannotCheck(f"{url}: the policy URL must start with http:// or https://")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(POLICY_MAX_BYTES + 1)
    except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts
        raise CannotCheck(f"{url}: cannot fetch the policy: {e}") from None
    if len(data) > POLICY_MAX_BYTES:
        raise CannotCheck(
            f"{url}: the policy is larger than {POLICY_MAX_BYTES} bytes;"
            " is this the hub's policy URL?"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CannotCheck(f"{url}: the policy is not UTF-8 text") from None
    return _policy_from_text(text, url)


def _read_limited(path: Path, limit: int) -> bytes | None:
    """Read at most limit+1 bytes, enough for the parser to see a file is too big."""
    try:
        with path.open("rb") as f:
            return f.read(limit + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CannotCheck(f"{path}: cannot read the file: {e.strerror}") from None


def resources_check(args: argparse.Namespace) -> int:
    """`hubext resources check`: print the effective values or the first problem."""
    policy, _ = load_policy(args.policy)
    name = args.path
    if Path(name).is_dir():
        name = str(Path(name) / ".resources")
    data = _read_limited(Path(name), policy.max_file_bytes)
    try:
        resources = parse_resources(data, policy, filename=name)
    except ResourceFileError as e:
        where = f"{name}:{e.line}" if e.line else name
        print(f"{where}: {e.reason}", file=sys.stderr)
        return EXIT_INVALID
    if data is None:
        print(f"{name}: no such file; the site defaults apply", file=sys.stderr)
    if args.json:
        print(json.dumps(resources.as_dict()))
        return EXIT_OK
    if data is not None:
        print(f"{name}: valid")
    values = resources.as_dict()
    for key in KEYS:
        print(f"{key:<4} = {format_number(values[key]):<6} # {_DESCRIBE[key]}")
    return EXIT_OK


def repository_check(args: argparse.Namespace) -> int:
    """`hubext check`: every finding, then a summary line (or one JSON document)."""
    if args.policy_url:
        policy, site_file = fetch_policy(args.policy_url)
    else:
        policy, site_file = load_policy(args.policy)
    resources_file = args.resources_file or site_file or ".resources"
    try:
        findings = repocheck.check_repository(args.path, policy, resources_file)
    except (NotADirectoryError, repocheck.ParserMissing) as e:
        raise CannotCheck(str(e)) from None
    if args.json:
        document = {
            "path": args.path,
            "findings": [f.as_dict() for f in findings],
            "summary": repocheck.summary(findings),
        }
        print(json.dumps(document, indent=2))
    else:
        for finding in findings:
            print(finding)
        print(repocheck.summary_line(findings))
    return EXIT_OK if repocheck.summary(findings)["ok"] else EXIT_INVALID


def add_check_command(commands) -> None:
    """`hubext check [PATH]`: a repository checkout, as the hub will build it."""
    check = commands.add_parser(
        "check",
        help="check a repository for what would break a launch on the hub",
        description=(
            "Check a repository checkout before launching it: its .resources"
            " file against the site policy, and its Dockerfile or repo2docker"
            " files against Binder's rules. Prints FILE:LINE: SEVERITY: message"
            " lines and a summary."
        ),
        epilog=(
            "Severities: error (the launch fails or the server is unusable),"
            " warning, info. Exit status: 0 no errors (warnings and notes"
            " alone exit 0), 1 at least one error, 2 could not check. Checking"
            " a Dockerfile needs the parser: pip install 'hubext[check]'."
        ),
    )
    check.add_argument(
        "path",
        nargs="?",
        default=".",
        metavar="PATH",
        help="the repository's directory (default: .)",
    )
    policy = check.add_mutually_exclusive_group()
    policy.add_argument(
        "--policy",
        metavar="FILE",
        help="YAML or JSON site policy, as for resources check (default: built in)",
    )
    policy.add_argument(
        "--policy-url",
        metavar="URL",
        help=f"fetch the hub's published policy (JSON or YAML; {POLICY_TIMEOUT} s"
        f" timeout, at most {POLICY_MAX_BYTES // 1024} KiB)",
    )
    check.add_argument(
        "--resources-file",
        metavar="NAME",
        help="the resources file, relative to PATH (default: the policy's"
        " resources_file, else .resources)",
    )
    check.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: {path, findings: [...], summary}",
    )
    check.set_defaults(run=repository_check)


def add_command_group(commands, name: str, help: str):
    """Add `hubext NAME ACTION ...`; return the subparsers for its actions."""
    group = commands.add_parser(
        name, help=help, description=help[0].upper() + help[1:] + "."
    )
    return group.add_subparsers(
        title="actions", metavar="ACTION", dest="action", required=True
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; add a subcommand with its own `set_defaults(run=...)`."""
    parser = argparse.ArgumentParser(
        prog="hubext", description="Tools for hubext users and admins."
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", dest="command", required=True
    )

    actions = add_command_group(commands, "resources", "work with .resources files")
    check = actions.add_parser(
        "check",
        help="check a .resources file and print the effective resources",
        description="Check a .resources file as the hub will at launch.",
        epilog="Exit status: 0 usable or missing, 1 invalid, 2 could not check.",
    )
    check.add_argument(
        "path",
        nargs="?",
        default=".resources",
        metavar="PATH",
        help="the file, or a repository directory holding it (default: .resources)",
    )
    check.add_argument(
        "--policy",
        metavar="FILE",
        help="YAML site policy: {defaults: {...}, maxima: {...}} (default: built in)",
    )
    check.add_argument(
        "--json", action="store_true", help="print the values as one JSON object"
    )
    check.set_defaults(run=resources_check)
    add_check_command(commands)
    add_chart_commands(commands)
    return parser


def binderhub_values_command(args: argparse.Namespace) -> int:
    """`hubext chart binderhub-values`: print the overlay as YAML."""
    try:
        values = chart.binderhub_values(
            args.name,
            args.tokens_secret,
            args.hub_image,
            args.binderhub_image,
            args.smtp_secret,
        )
    except ValueError as e:
        print(f"hubext: {e}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    sys.stdout.write(chart.dump_yaml(values))
    return EXIT_OK


def add_chart_commands(commands) -> None:
    """`hubext chart ...`: the chart's overlay for the official BinderHub chart."""
    actions = add_command_group(commands, "chart", "work with the hubext Helm chart")
    overlay = actions.add_parser(
        "binderhub-values",
        help="print the values to give the official BinderHub chart",
        description="Print the values overlay for the official BinderHub chart.",
    )
    overlay.add_argument(
        "--name",
        default="hubext",
        help="the hubext ConfigMap: its release name (default: hubext)",
    )
    overlay.add_argument(
        "--tokens-secret",
        metavar="SECRET",
        help="Secret with the host tokens (default: NAME-repo-host-tokens)",
    )
    overlay.add_argument(
        "--smtp-secret",
        metavar="SECRET",
        help="Secret with the SMTP password under the key password"
        " (default: NAME-smtp)",
    )
    overlay.add_argument(
        "--hub-image", metavar="NAME:TAG", help="hub image with hubext installed"
    )
    overlay.add_argument(
        "--binderhub-image",
        metavar="NAME:TAG",
        help="BinderHub image with hubext installed",
    )
    overlay.set_defaults(run=binderhub_values_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hubext` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CannotCheck as e:
        print(f"hubext: {e}", file=sys.stderr)
        return EXIT_CANNOT_CHECK


if __name__ == "__main__":
    sys.exit(main())
