"""`hubext resources check`, run as a real process on real files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent


def hubext(*args, cwd):
    """Run the CLI the way the console script does, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "hubext.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},
    )


@pytest.fixture
def repo(tmp_path):
    return tmp_path


def test_valid_file_prints_effective_values(repo):
    (repo / ".resources").write_bytes(b"# mine\ncpur=2\nmemr=0.5  # half a GB\n")
    run = hubext("resources", "check", cwd=repo)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert run.stdout.splitlines() == [
        ".resources: valid",
        "gpu  = 0      # GPUs",
        "cpur = 2      # CPU request, cores",
        "cpul = 8      # CPU limit, cores",
        "memr = 0.5    # RAM request, GB (1 GB = 1024**3 bytes)",
        "meml = 16     # RAM limit, GB (1 GB = 1024**3 bytes)",
    ]


def test_json_output(repo):
    (repo / "res").write_bytes(b"meml=8\r\ncpul=2\r\n")
    run = hubext("resources", "check", "res", "--json", cwd=repo)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "gpu": 0,
        "cpur": 1,
        "cpul": 2,
        "memr": 1,
        "meml": 8,
    }


def test_directory_means_its_resources_file(repo):
    (repo / "project").mkdir()
    (repo / "project" / ".resources").write_bytes(b"memr=4G\n")
    run = hubext("resources", "check", "project", cwd=repo)
    assert run.returncode == 1
    assert run.stderr == (
        "project/.resources:1: memr=4G: write memr=4 (a number of GB, without units)\n"
    )


def test_missing_file_means_defaults(repo):
    run = hubext("resources", "check", "--json", cwd=repo)
    assert run.returncode == 0
    assert run.stderr == ".resources: no such file; the site defaults apply\n"
    assert json.loads(run.stdout) == {
        "gpu": 0,
        "cpur": 1,
        "cpul": 8,
        "memr": 1,
        "meml": 16,
    }
    plain = hubext("resources", "check", cwd=repo)
    assert plain.returncode == 0
    assert "memr = 1 " in plain.stdout and "valid" not in plain.stdout


@pytest.mark.parametrize(
    "content, stderr",
    [
        (
            b"memr=1\nmeml=2\nmemr=3\n",
            "bad:3: memr=3: memr is already set on line 1; keep only one memr line\n",
        ),
        (
            b"# x\nmemr=32\n",
            "bad:2: memr=32: the request is above the default limit meml=16;"
            " add the line meml=32 (or more) to raise the limit\n",
        ),
        (
            b"#" * 5000,
            "bad: the file is larger than 4096 bytes; a .resources file needs"
            " only a few short lines such as memr=4\n",
        ),
        (
            b"\xfe\n",
            "bad:1: not UTF-8 text (byte 0xfe); save the file as UTF-8 (plain text)\n",
        ),
    ],
)
def test_invalid_file_exit_1_with_path_and_line(repo, content, stderr):
    (repo / "bad").write_bytes(content)
    for extra in ([], ["--json"]):
        run = hubext("resources", "check", "bad", *extra, cwd=repo)
        assert (run.returncode, run.stdout, run.stderr) == (1, "", stderr)


def test_policy_file_sets_defaults_and_maxima(repo):
    (repo / "site.yaml").write_text(
        "defaults: {gpu: 0, cpur: 1, cpul: 8, memr: 2, meml: 16}\n"
        "maxima: {gpu: 2, cpur: 32, cpul: 32, memr: 256, meml: 256}\n"
    )
    (repo / ".resources").write_bytes(b"gpu=2\n")
    run = hubext("resources", "check", "--policy", "site.yaml", "--json", cwd=repo)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "gpu": 2,
        "cpur": 1,
        "cpul": 8,
        "memr": 2,
        "meml": 16,
    }
    without = hubext("resources", "check", cwd=repo)
    assert without.returncode == 1
    assert without.stderr == (
        ".resources:1: gpu=2: this hub has no GPUs; write gpu=0 or remove the line\n"
    )


def test_policy_maximum_is_named(repo):
    (repo / "site.yaml").write_text("maxima: {meml: 32}\n")
    (repo / ".resources").write_bytes(b"meml=64\n")
    run = hubext("resources", "check", "--policy", "site.yaml", cwd=repo)
    assert run.returncode == 1
    assert run.stderr == (
        ".resources:1: meml=64: above this hub's maximum of 32 GB;"
        " write meml=32 or less\n"
    )


@pytest.mark.parametrize(
    "policy, stderr",
    [
        (
            "maxima: {meml: 4}\n",
            "hubext: site.yaml: resource policy: defaults.meml=16 is above"
            " maxima.meml=4; lower defaults.meml or raise maxima.meml\n",
        ),
        (
            "maxima: {memx: 4}\n",
            "hubext: site.yaml: resource policy: unknown key maxima.memx. Did you"
            " mean maxima.memr? The keys are gpu, cpur, cpul, memr, meml.\n",
        ),
        ("maxima: [1\n", "hubext: site.yaml: the policy file is not valid YAML: "),
        (None, "hubext: site.yaml: cannot read the policy file: "),
    ],
)
def test_bad_policy_exit_2(repo, policy, stderr):
    if policy is not None:
        (repo / "site.yaml").write_text(policy)
    (repo / ".resources").write_bytes(b"memr=2\n")
    run = hubext("resources", "check", "--policy", "site.yaml", cwd=repo)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.startswith(stderr)


def test_usage_errors_exit_2(repo):
    assert hubext(cwd=repo).returncode == 2
    assert hubext("resources", cwd=repo).returncode == 2
    run = hubext("resources", "check", "--bogus", cwd=repo)
    assert run.returncode == 2 and "unrecognized arguments: --bogus" in run.stderr


def test_console_script_is_installed(repo):
    """The `hubext` entry point from setup.cfg runs the same main()."""
    script = Path(sys.executable).with_name("hubext")
    if not script.exists():
        pytest.fail(
            f"console script missing next to {sys.executable}; pip install -e ."
        )
    (repo / ".resources").write_bytes(b"cpur=500m\n")
    run = subprocess.run(
        [str(script), "resources", "check"], cwd=repo, capture_output=True, text=True
    )
    assert run.returncode == 1
    assert run.stderr == (
        ".resources:1: cpur=500m: write cpur=0.5 (a number of cores, without units)\n"
    )
