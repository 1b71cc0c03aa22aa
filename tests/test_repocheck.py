"""`hubext check`: real repositories made on disk (git where file modes
matter), each with the exact findings expected; the CLI run as a process for
its output, JSON and exit statuses; --policy-url against a loopback server."""

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hubext import cli
from hubext.repocheck import check_repository
from hubext.resources import ResourcePolicy

ROOT = Path(__file__).resolve().parent.parent
DOCS_PAGE = ROOT / "docs" / "how-to" / "check-a-repository.md"

GOOD_DOCKERFILE = """\
FROM python:3.12-slim
ARG NB_USER=jovyan
ARG NB_UID=1000
ENV HOME=/home/${NB_USER}
RUN python3 -m pip install --no-cache-dir \\
        jupyterhub==5.2.1 jupyterlab==4.3.4
RUN useradd --create-home --uid ${NB_UID} ${NB_USER}
COPY --chown=${NB_USER}:${NB_USER} . ${HOME}
USER ${NB_USER}
WORKDIR ${HOME}
ENTRYPOINT ["/home/jovyan/entrypoint.sh"]
"""
GOOD_ENTRYPOINT = """\
#!/bin/sh
# the project's data folder, then the server the hub asks for
export PROJECT_DATA="$HOME/data"
exec "$@"
"""
BAD_DOCKERFILE = """\
FROM python:latest
RUN pip install --no-cache-dir notebook
COPY . /home/jovyan
ENTRYPOINT /home/jovyan/entrypoint.sh
"""
INSTALL = GOOD_DOCKERFILE.split("RUN ", 1)[1].split("\nRUN", 1)[0]
BUILT = ("Dockerfile", None, "info", "built from this Dockerfile alone")

#: The repositories of the docs page (docs/how-to/check-a-repository.md).
DOCS_GOOD = {
    "Dockerfile": GOOD_DOCKERFILE,
    "entrypoint.sh": GOOD_ENTRYPOINT,
    ".resources": "cpur=2\nmemr=4\n",
}
DOCS_BAD = {
    "Dockerfile": BAD_DOCKERFILE,
    "entrypoint.sh": "#!/bin/sh\nexport PROJECT_DATA=$HOME/data\njupyter lab\n",
    "requirements.txt": "numpy==2.2.1\n",
    ".resources": "cpur=2\nmemr=4G\n",
}


def good(old: str = "", new: str = "") -> dict:
    """The good repository with one change to its Dockerfile."""
    assert old in GOOD_DOCKERFILE
    return {**DOCS_GOOD, "Dockerfile": GOOD_DOCKERFILE.replace(old, new, 1)}


def make_repo(path: Path, files: dict, executable=(), git=False) -> Path:
    """Write `files` (name: text) under `path`; `executable` get mode 755;
    with `git`, commit them all."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o755 if name in executable else 0o644)
    if git:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Author",
            "GIT_AUTHOR_EMAIL": "author@example.org",
            "GIT_COMMITTER_NAME": "Author",
            "GIT_COMMITTER_EMAIL": "author@example.org",
        }
        for args in (
            ["init", "-q"],
            ["add", "-A"],
            ["-c", "commit.gpgsign=false", "commit", "-q", "-m", "repo"],
        ):
            subprocess.run(["git", *args], cwd=path, env=env, check=True)
    return path


def assert_findings(findings, expected):
    """Exactly the expected findings, in order: (file, line, severity, part
    of the message)."""
    got = [(f.file, f.line, f.severity, f.message) for f in findings]
    assert len(got) == len(expected), "\n".join(map(str, findings))
    for (file, line, severity, message), want in zip(got, expected, strict=True):
        assert (file, line, severity) == want[:3], (got, want)
        assert want[3] in message, (message, want)


DOCKERFILE_CASES = {
    "correct": (good(), []),
    "latest tag": (
        good("python:3.12-slim", "python:latest"),
        [("Dockerfile", 1, "error", "FROM python:latest: the tag latest moves")],
    ),
    "no tag": (
        good("python:3.12-slim", "python"),
        [("Dockerfile", 1, "error", "FROM python: no tag")],
    ),
    "digest instead of a tag": (good("python:3.12-slim", "python@sha256:ab12"), []),
    "base image from an ARG": (
        good("FROM python:3.12-slim", "ARG BASE=python:3.12-slim\nFROM ${BASE}"),
        [],
    ),
    "base image from an ARG without a default": (
        good("FROM python:3.12-slim", "ARG BASE\nFROM ${BASE}"),
        [
            ("Dockerfile", 2, "warning", "FROM ${BASE}: cannot tell the image"),
        ],
    ),
    "unknown base image and no install": (
        {"Dockerfile": "ARG BASE\nFROM ${BASE}\nUSER 1000\nCOPY --chown=1000 . /srv\n"},
        [
            ("Dockerfile", 2, "warning", "FROM ${BASE}: cannot tell the image"),
            ("Dockerfile", 2, "warning", "cannot tell whether the base image has"),
        ],
    ),
    "missing jupyterhub": (
        good("jupyterhub==5.2.1 ", ""),
        [("Dockerfile", 1, "error", "jupyterhub not installed")],
    ),
    "missing jupyterlab": (
        good(" jupyterlab==4.3.4", ""),
        [("Dockerfile", 1, "error", "notebook or jupyterlab not installed")],
    ),
    "jupyterhub-singleuser is not jupyterhub": (
        good("jupyterhub==5.2.1", "jupyterhub-singleuser"),
        [("Dockerfile", 1, "error", "jupyterhub not installed")],
    ),
    "conda install": (
        good(
            INSTALL,
            "conda install -y -c conda-forge conda-forge::jupyterhub=5.2 notebook",
        ),
        [],
    ),
    "heredoc install": (
        good(
            "RUN " + INSTALL,
            "RUN <<EOF\nset -e\npip install 'jupyterhub>=5' jupyterlab\nEOF",
        ),
        [],
    ),
    "packages from a requirements file": (
        {
            **good(
                INSTALL,
                "pip install -r /srv/requirements.txt",
            ),
            "requirements.txt": "# the server\njupyterhub==5.2.1\njupyterlab\n",
        },
        [],
    ),
    "an unknown base image": (
        {
            "Dockerfile": "FROM myorg/analysis:1.0\nCOPY --chown=1000:100 . /srv\n"
            "USER 1000\n"
        },
        [("Dockerfile", 1, "warning", "cannot tell whether myorg/analysis:1.0")],
    ),
    "root user": (
        good('ENTRYPOINT ["/home/jovyan/entrypoint.sh"]', "USER root"),
        [("Dockerfile", 11, "error", "the image runs as root (USER root)")],
    ),
    "no USER": (
        good("USER ${NB_USER}\n", ""),
        [("Dockerfile", 1, "error", "there is no USER instruction")],
    ),
    "a user without uid 1000": (
        good("--uid ${NB_UID} ", ""),
        [
            ("Dockerfile", 8, "error", "belong to jovyan:jovyan, not uid 1000"),
            ("Dockerfile", 9, "error", "USER jovyan: the user is not created with uid"),
        ],
    ),
    "a user of unknown uid": (
        good("USER ${NB_USER}", "USER someone"),
        [("Dockerfile", 9, "warning", "USER someone: cannot tell its uid")],
    ),
    "adduser -u": (
        good(
            "useradd --create-home --uid ${NB_UID} ${NB_USER}",
            'adduser --disabled-password --gecos "Default user" -u 1000 jovyan',
        ),
        [],
    ),
    "COPY without chown": (
        good("--chown=${NB_USER}:${NB_USER} ", ""),
        [("Dockerfile", 8, "error", "files in /home/jovyan belong to root")],
    ),
    "COPY, then chown -R": (
        good(
            "--chown=${NB_USER}:${NB_USER} . ${HOME}",
            ". ${HOME}\nUSER root\nRUN chown -R ${NB_UID} ${HOME}",
        ),
        [],
    ),
    "chown -R of another folder": (
        good(
            "--chown=${NB_USER}:${NB_USER} . ${HOME}",
            ". ${HOME}\nUSER root\nRUN chown -R ${NB_UID} /opt",
        ),
        [("Dockerfile", 8, "error", "files in /home/jovyan belong to root")],
    ),
    "repository not copied": (
        good("COPY --chown=${NB_USER}:${NB_USER} . ${HOME}\n", ""),
        [("Dockerfile", None, "warning", "the repository is not copied")],
    ),
    "copied outside the home directory": (
        good(". ${HOME}", ". /srv/project"),
        [("Dockerfile", 8, "warning", "copied to /srv/project, not to the home")],
    ),
    "shell-form ENTRYPOINT": (
        good('["/home/jovyan/entrypoint.sh"]', "/home/jovyan/entrypoint.sh"),
        [("Dockerfile", 11, "error", "ENTRYPOINT in shell form")],
    ),
    "entrypoint script without exec": (
        {**good(), "entrypoint.sh": "#!/bin/sh\nexport A=1\njupyter lab\n"},
        [("entrypoint.sh", 3, "error", "(Dockerfile line 11) never runs the command")],
    ),
    "entrypoint run by bash, relative to WORKDIR": (
        good('["/home/jovyan/entrypoint.sh"]', '["/bin/bash", "entrypoint.sh"]'),
        [],
    ),
    "entrypoint not in the repository": (
        good("/home/jovyan/entrypoint.sh", "/opt/launch"),
        [("Dockerfile", 11, "warning", "ENTRYPOINT /opt/launch: not a file of this")],
    ),
    "ENTRYPOINT reset": (good('["/home/jovyan/entrypoint.sh"]', "[]"), []),
    "tini": (good('["/home/jovyan/entrypoint.sh"]', '["tini", "--"]'), []),
    "jupyter docker-stacks image": (
        {
            "Dockerfile": "FROM quay.io/jupyter/scipy-notebook:2024-10-07\n"
            "COPY --chown=${NB_USER}:users . ${HOME}\n"
        },
        [],
    ),
    "jupyter docker-stacks image, no tag": (
        {"Dockerfile": "FROM jupyter/scipy-notebook\nCOPY --chown=1000 . ${HOME}\n"},
        [("Dockerfile", 1, "error", "FROM jupyter/scipy-notebook: no tag")],
    ),
    "jupyter docker-stacks image left as root": (
        {
            "Dockerfile": "FROM quay.io/jupyter/base-notebook:2024-10-07\n"
            "USER root\nRUN apt-get update\nCOPY --chown=1000 . ${HOME}\n"
        },
        [("Dockerfile", 2, "error", "runs as root (USER root)")],
    ),
    "multi-stage": (
        {
            "Dockerfile": "FROM python:3.12-slim AS base\n"
            "RUN pip install --no-cache-dir jupyterhub notebook\n"
            "FROM node:latest AS assets\nRUN npm ci\n"
            "FROM base\nRUN useradd -m -u 1000 jovyan\n"
            "COPY --chown=1000 . /home/jovyan\nUSER jovyan\n"
        },
        [("Dockerfile", 3, "error", "FROM node:latest: the tag latest moves")],
    ),
    "unparsable": (
        {"Dockerfile": "FROM python:3.12\nRUN <<EOF\npip install x\n"},
        [("Dockerfile", None, "error", "Docker cannot parse it: unterminated")],
    ),
    "other files beside it": (
        {**good(), "requirements.txt": "numpy\n", "apt.txt": "vim\n"},
        [
            ("requirements.txt", None, "warning", "ignored: Dockerfile builds"),
            ("apt.txt", None, "warning", "ignored: Dockerfile builds"),
        ],
    ),
}


@pytest.mark.parametrize(
    "files, expected", DOCKERFILE_CASES.values(), ids=list(DOCKERFILE_CASES)
)
def test_dockerfile(tmp_path, files, expected):
    repo = make_repo(tmp_path, {k: v for k, v in files.items() if k != ".resources"})
    expected_all = (
        [] if expected and expected[0][3].startswith("Docker cannot") else [BUILT]
    )
    assert_findings(check_repository(repo), expected_all + expected)


R2D_CASES = {
    "requirements.txt only": (
        {"requirements.txt": "numpy==2.2.1\n", "analysis.ipynb": "{}"},
        [("requirements.txt", None, "info", "Python packages installed with pip")],
    ),
    "nothing to configure": (
        {"README.md": "# notes\n"},
        [(".", None, "info", "repo2docker's default Python environment")],
    ),
    "binder/ overrides the root": (
        {
            "Dockerfile": BAD_DOCKERFILE,
            "requirements.txt": "numpy\n",
            "binder/requirements.txt": "numpy\n",
            "binder/apt.txt": "vim\n",
        },
        [
            ("Dockerfile", None, "warning", "ignored: repo2docker reads only binder/"),
            ("requirements.txt", None, "warning", "move the file to binder/"),
            ("binder/requirements.txt", None, "info", "installed with pip"),
            ("binder/apt.txt", None, "info", "installed with apt-get"),
        ],
    ),
    "both binder/ and .binder/": (
        {"binder/apt.txt": "vim\n", ".binder/apt.txt": "vim\n"},
        [(".", None, "error", "both binder/ and .binder/")],
    ),
    "environment.yml wins over requirements.txt": (
        {"environment.yml": "dependencies: [numpy]\n", "requirements.txt": "numpy\n"},
        [
            ("environment.yml", None, "info", "conda environment"),
            ("requirements.txt", None, "warning", "environment.yml takes precedence"),
        ],
    ),
    "runtime.txt": (
        {"requirements.txt": "numpy\n", "runtime.txt": "python-3.11\n"},
        [
            ("requirements.txt", None, "info", "pip"),
            ("runtime.txt", 1, "info", "Python 3.11"),
        ],
    ),
    "runtime.txt for R": (
        {"install.R": "install.packages('x')\n", "runtime.txt": "r-4.4-2025-01-01\n"},
        [
            ("install.R", None, "info", "R script"),
            ("runtime.txt", 1, "info", "R 4.4, packages from the 2025-01-01 snapshot"),
        ],
    ),
    "runtime.txt beside environment.yml": (
        {"environment.yml": "dependencies: [numpy]\n", "runtime.txt": "python-3.9\n"},
        [
            ("environment.yml", None, "info", "conda"),
            ("runtime.txt", 1, "warning", "ignored (python-3.9)"),
        ],
    ),
    "default.nix": (
        {"default.nix": "{}\n", "requirements.txt": "numpy\n"},
        [
            ("requirements.txt", None, "warning", "ignored: with default.nix"),
            ("default.nix", None, "info", "nix packages"),
            ("default.nix", None, "warning", "must include Jupyter"),
        ],
    ),
    "Julia and REQUIRE": (
        {"Project.toml": "[deps]\n", "REQUIRE": "julia 0.6\n"},
        [
            ("Project.toml", None, "info", "Julia environment"),
            ("REQUIRE", None, "warning", "no longer supports REQUIRE"),
        ],
    ),
}


@pytest.mark.parametrize("files, expected", R2D_CASES.values(), ids=list(R2D_CASES))
def test_repo2docker_files(tmp_path, files, expected):
    assert_findings(check_repository(make_repo(tmp_path, files)), expected)


def test_scripts_in_git(tmp_path):
    files = {
        "requirements.txt": "numpy\n",
        "postBuild": "#!/bin/bash\nset -e\njupyter lab build\n",
        "start": "#!/bin/bash\nexport A=1\n\n# done\n",
    }
    repo = make_repo(tmp_path, files, executable={"postBuild", "start"}, git=True)
    assert_findings(
        check_repository(repo),
        [
            ("requirements.txt", None, "info", "pip"),
            ("postBuild", None, "info", "run once at the end of the build"),
            ("start", None, "info", "run at every server start"),
            ("start", 2, "error", 'the last command must be exec "$@"'),
        ],
    )


def test_git_mode_wins_over_the_disk(tmp_path):
    files = {"start": '#!/bin/bash\nexport A=1\nexec "$@"\n'}
    repo = make_repo(tmp_path, files, git=True)
    (repo / "start").chmod(0o755)  # executable here, not in the commit
    assert_findings(
        check_repository(repo),
        [
            ("start", None, "info", "run at every server start"),
            ("start", None, "warning", "not executable (git mode 644)"),
        ],
    )


def test_binder_folder_script_outside_git(tmp_path):
    files = {".binder/start": '#!/bin/sh\nexec "$@"\n', "start": "#!/bin/sh\n"}
    repo = make_repo(tmp_path, files, executable={".binder/start"})
    assert_findings(
        check_repository(repo),
        [
            ("start", None, "warning", "reads only .binder/"),
            (".binder/start", None, "info", "run at every server start"),
        ],
    )


@pytest.mark.parametrize(
    "text, policy, expected",
    [
        ("gpu=1\n", None, (".resources", 1, "error", "this hub has no GPUs")),
        (
            "gpu=1\n",
            {"maxima": {"gpu": 2}},
            (
                ".resources",
                None,
                "info",
                "the server gets CPU 1 (limit 8), RAM 1–16 GB, 1 GPU",
            ),
        ),
        (
            "# mine\ncpur=4\ncpul=2\n",
            None,
            (".resources", 2, "error", "cpur=4: the request is above the limit cpul=2"),
        ),
    ],
)
def test_resources_against_a_policy(tmp_path, text, policy, expected):
    repo = make_repo(tmp_path, {".resources": text, "requirements.txt": "numpy\n"})
    findings = check_repository(repo, ResourcePolicy.from_dict(policy))
    assert_findings(findings, [expected, ("requirements.txt", None, "info", "pip")])


def hubext(*args, cwd, env=None, code=None):
    """The CLI in a fresh interpreter, as the console script runs it."""
    command = [sys.executable, "-m", "hubext.cli", *args]
    if code is not None:
        command = [sys.executable, "-c", code, *args]
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
            **(env or {}),
        },
    )


def test_cli_bad_repository(tmp_path):
    run = hubext("check", cwd=make_repo(tmp_path / "myrepo", DOCS_BAD))
    assert run.returncode == 1, run.stderr
    assert run.stderr == ""
    assert run.stdout.splitlines() == [
        ".resources:2: error: memr=4G: write memr=4 (a number of GB, without units)",
        "Dockerfile: info: the image is built from this Dockerfile alone",
        "requirements.txt: warning: ignored: Dockerfile builds the image; install"
        " what this file lists in the Dockerfile",
        "Dockerfile:1: error: FROM python:latest: the tag latest moves; Binder"
        " needs a fixed base image: write python:<version>, such as a dated tag",
        "Dockerfile:1: error: jupyterhub not installed: the hub starts"
        " jupyterhub-singleuser in the image; add RUN python3 -m pip install"
        " --no-cache-dir jupyterhub",
        "Dockerfile:1: error: the image runs as root (there is no USER"
        " instruction); Binder runs the server as uid 1000: create the user"
        " (useradd -m -u 1000 jovyan) and end with USER 1000",
        "Dockerfile:3: error: the repository's files in /home/jovyan belong to"
        " root, so notebooks cannot be saved: write COPY --chown=1000:100 (or"
        " --chown=${NB_USER}), or RUN chown -R 1000 /home/jovyan after the COPY",
        "Dockerfile:4: error: ENTRYPOINT in shell form ignores the command the hub"
        ' gives the image; write the exec form, ENTRYPOINT ["/path/script"], with'
        ' a script that ends with exec "$@"',
        "6 errors, 1 warning, 1 note: fix the errors before launching",
    ]


def test_cli_good_repository_and_path_argument(tmp_path):
    make_repo(tmp_path / "myrepo", DOCS_GOOD)
    run = hubext("check", "myrepo", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        ".resources: info: valid: the server gets CPU 2 (limit 8), RAM 4–16 GB, no GPU",
        "Dockerfile: info: the image is built from this Dockerfile alone",
        "0 errors, 0 warnings, 2 notes: nothing found that would break a launch",
    ]


def test_cli_warnings_alone_exit_0(tmp_path):
    repo = make_repo(tmp_path, {**DOCS_GOOD, "apt.txt": "vim\n"})
    run = hubext("check", cwd=repo)
    assert run.returncode == 0
    assert "apt.txt: warning: ignored" in run.stdout
    assert run.stdout.endswith(
        "0 errors, 1 warning, 2 notes: nothing found that would break a launch\n"
    )


def test_cli_json(tmp_path):
    repo = make_repo(tmp_path, {**DOCS_BAD, "apt.txt": "vim\n"})
    run = hubext("check", "--json", cwd=repo)
    assert run.returncode == 1
    document = json.loads(run.stdout)
    assert set(document) == {"path", "findings", "summary"}
    assert document["path"] == "."
    assert document["summary"] == {"error": 6, "warning": 2, "info": 1, "ok": False}
    assert document["findings"][0] == {
        "file": ".resources",
        "line": 2,
        "severity": "error",
        "message": "memr=4G: write memr=4 (a number of GB, without units)",
    }
    assert all(
        set(f) == {"file", "line", "severity", "message"} for f in document["findings"]
    )
    good = hubext("check", "--json", cwd=make_repo(tmp_path / "good", DOCS_GOOD))
    assert good.returncode == 0
    assert json.loads(good.stdout)["summary"] == {
        "error": 0,
        "warning": 0,
        "info": 2,
        "ok": True,
    }


def test_cli_policy_file_and_resources_file(tmp_path):
    repo = make_repo(
        tmp_path, {"binder/.resources": "gpu=1\n", "binder/apt.txt": "vim\n"}
    )
    (tmp_path / "site.json").write_text('{"maxima": {"gpu": 1}}')
    run = hubext(
        "check",
        "--policy",
        "site.json",
        "--resources-file",
        "binder/.resources",
        cwd=repo,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith(
        "binder/.resources: info: valid: the server gets CPU 1 (limit 8), RAM 1–16 GB, 1 GPU\n"
    )
    refused = hubext("check", "--resources-file", "binder/.resources", cwd=repo)
    assert refused.returncode == 1
    assert refused.stdout.startswith(
        "binder/.resources:1: error: gpu=1: this hub has no GPUs"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere"], "hubext: nowhere: not a directory\n"),
        (
            ["--policy", "site.yaml"],
            "hubext: site.yaml: resource policy: unknown key maxima.gpus. Did you mean maxima.gpu?",
        ),
        (
            ["--policy", "missing.yaml"],
            "hubext: missing.yaml: cannot read the policy file",
        ),
        (
            ["--policy", "site.yaml", "--policy-url", "http://127.0.0.1:9/"],
            "not allowed with argument",
        ),
        (
            ["--policy-url", "file:///etc/passwd"],
            "the policy URL must start with http:// or https://",
        ),
    ],
)
def test_cli_cannot_check_exits_2(tmp_path, args, message):
    repo = make_repo(tmp_path, {"requirements.txt": "numpy\n"})
    (repo / "site.yaml").write_text("maxima: {gpus: 1}\n")
    run = hubext("check", *args, cwd=repo)
    assert run.returncode == 2
    assert run.stdout == ""
    assert message in run.stderr


NO_PARSER = (
    "import sys; sys.modules['dockerfile'] = None; from hubext.cli import main;"
    " sys.exit(main(sys.argv[1:]))"
)


def test_without_the_parser(tmp_path):
    docker = make_repo(tmp_path / "docker", DOCS_GOOD)
    run = hubext("check", cwd=docker, code=NO_PARSER)
    assert run.returncode == 2
    assert "pip install 'hubext[check]'" in run.stderr
    plain = make_repo(tmp_path / "plain", {"requirements.txt": "numpy\n"})
    assert hubext("check", cwd=plain, code=NO_PARSER).returncode == 0


class _PolicyServer(BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):
        status, body = self.routes.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def policy_server():
    _PolicyServer.routes = {
        "/policy.json": (200, b'{"maxima": {"gpu": 2}}'),
        "/policy.yaml": (200, b"maxima:\n  gpu: 2\n"),
        "/bad.json": (200, b'{"maxima": {"gpu": -1}}'),
        "/big.json": (200, b" " * (cli.POLICY_MAX_BYTES + 1) + b"{}"),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PolicyServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "path, code, output",
    [
        (
            "/policy.json",
            0,
            ".resources: info: valid: the server gets CPU 1 (limit 8), RAM 1–16 GB, 2 GPUs",
        ),
        (
            "/policy.yaml",
            0,
            ".resources: info: valid: the server gets CPU 1 (limit 8), RAM 1–16 GB, 2 GPUs",
        ),
        (
            "/bad.json",
            2,
            "/bad.json: resource policy: maxima.gpu must be a finite number of 0 or more",
        ),
        ("/big.json", 2, "/big.json: the policy is larger than 65536 bytes"),
        ("/missing.json", 2, "/missing.json: cannot fetch the policy: HTTP Error 404"),
    ],
)
def test_policy_url(tmp_path, policy_server, path, code, output):
    repo = make_repo(tmp_path, {".resources": "gpu=2\n"})
    run = hubext("check", "--policy-url", policy_server + path, cwd=repo)
    assert run.returncode == code, run.stdout + run.stderr
    assert output in (run.stdout if code == 0 else run.stderr)


def test_policy_url_times_out():
    with socket.socket() as listener:  # accepts, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/policy.json"
        with pytest.raises(cli.CannotCheck, match="cannot fetch the policy: timed out"):
            cli.fetch_policy(url, timeout=0.5)


def test_docs_show_the_real_output(tmp_path):
    """The page's examples are this command's output on these repositories."""
    page = DOCS_PAGE.read_text()
    runs = [("bad", DOCS_BAD, ["check"]), ("good", DOCS_GOOD, ["check"])]
    runs.append(("good", DOCS_GOOD, ["check", "--json"]))
    for name, files, args in runs:
        run = hubext(*args, cwd=make_repo(tmp_path / name, files))
        shown = f"$ hubext {' '.join(args)}\n{run.stdout}"
        assert shown in page, f"the page does not show:\n{shown}"
        for file, text in files.items():
            assert text in page, f"the page does not show the {name} {file}"
