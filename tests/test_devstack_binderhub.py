"""`python -m devstack up` is the whole service, as a newcomer meets it.

The stack runs as `bash dev/up` runs it (`python -m devstack up`, here with a
temporary workdir): its own control plane and test kubelet, the sample git
server, the hub and BinderHub. The test reads the URLs it prints, then
checks what the quick start promises: BinderHub answers, the sample
repository's URL serves git, and one launch of it through BinderHub's event
stream reaches ``ready`` with the sample `.resources` on the pod, read back
from the stack's API server. Ctrl-C (SIGINT) stops it all.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

import pytest
import requests
from kubernetes_asyncio import client, config

from devstack import gitserver
from tests.fixtures.binderhub import launch, signed_in
from tests.helpers.processes import REPO, child_env

pytestmark = [pytest.mark.cluster, pytest.mark.hub, pytest.mark.slow]

START_TIMEOUT = 120
STOP_TIMEOUT = 90
MiB = 1024**2
#: gitserver.SAMPLE_RESOURCES on the pod: cpur=0.5 cpul=1 memr=0.5 meml=1
SAMPLE_REQUESTS = {"cpu": "500m", "memory": str(512 * MiB)}
SAMPLE_LIMITS = {"cpu": "1", "memory": str(1024 * MiB)}


@dataclass
class Printed:
    """What `python -m devstack up` printed, and the process."""

    proc: subprocess.Popen
    text: str

    def find(self, what: str) -> str:
        """The URL (or path) printed for `what`, a key of `PRINTED`."""
        match = re.search(PRINTED[what], self.text)
        assert match, f"no {what} in the output:\n{self.text}"
        return match.group(1)


#: where the printed usage names each URL and file
PRINTED = {
    "binder": r"open BinderHub:\s+(http://\S+?)/?\n",
    "sample": r"sample repository's URL:\s+(http://\S+)\n",
    "hub": r"hub:\s+(http://\S+)/hub/login\n",
    "kubeconfig": r"kubeconfig: (\S+)\n",
}


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@pytest.fixture
def dev_up(tmp_path):
    """`python -m devstack up --workdir <tmp>` until it prints its usage."""
    env = child_env()
    env.pop("KUBECONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up", "--workdir", str(tmp_path / "w")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    text, deadline = "", time.monotonic() + START_TIMEOUT
    try:
        while "Ctrl-C stops everything" not in text:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"devstack up exited:\n{text}"
            text += line
        yield Printed(proc, text)
    finally:
        _interrupt(proc)


def _interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C, as in the terminal; whatever is left after the grace is killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_TIMEOUT)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def git_ls_remote(url: str) -> str:
    env = {"PATH": os.environ["PATH"], **gitserver.GIT_ENV, "GIT_TERMINAL_PROMPT": "0"}
    out = subprocess.run(
        ["git", "ls-remote", url], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


async def pod_of(kubeconfig: str, user: str, server: str):
    api = await config.new_client_from_config(config_file=kubeconfig)
    try:
        pods = (await client.CoreV1Api(api).list_namespaced_pod("hubext-dev")).items
    finally:
        await api.close()
    [pod] = [
        p
        for p in pods
        if p.metadata.annotations.get("hub.jupyter.org/username") == user
        and p.metadata.annotations.get("hub.jupyter.org/servername") == server
    ]
    return pod


async def test_dev_up_serves_binderhub_and_the_sample_repository(dev_up):
    binder_url, hub_url = dev_up.find("binder"), dev_up.find("hub")
    sample_url, kubeconfig = dev_up.find("sample"), dev_up.find("kubeconfig")
    # cookies are kept per host: BinderHub's must not reach the hub's pages
    assert urlsplit(binder_url).hostname != urlsplit(hub_url).hostname
    for url in (binder_url, hub_url, sample_url):
        assert urlsplit(url).hostname.startswith("127."), url

    versions = requests.get(f"{binder_url}/versions", timeout=10)
    assert versions.status_code == 200, versions.text
    assert "binderhub" in versions.json()

    refs = git_ls_remote(sample_url)
    assert re.search(r"^[0-9a-f]{40}\trefs/heads/main$", refs, re.M), refs

    # the quick start: sign in, paste the sample URL, launch
    binder = SimpleNamespace(url=binder_url, hub=SimpleNamespace(url=hub_url))
    session = await signed_in(binder, "newcomer")
    result = await launch(session, f"git/{quote(sample_url, safe='')}/HEAD")
    assert result.ready, result.text
    assert result.final["url"].startswith(f"{hub_url}/user/newcomer/"), result.final

    pod = await pod_of(kubeconfig, "newcomer", result.server_name)
    [notebook] = [c for c in pod.spec.containers if c.name == "notebook"]
    assert notebook.resources.requests == SAMPLE_REQUESTS
    assert notebook.resources.limits == SAMPLE_LIMITS

    # Ctrl-C stops everything: the process ends cleanly and nothing answers
    _interrupt(dev_up.proc)
    assert dev_up.proc.returncode == 0
    for url in (f"{binder_url}/versions", f"{hub_url}/hub/api"):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
