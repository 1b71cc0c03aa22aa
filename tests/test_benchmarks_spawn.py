"""The spawn benchmarks keep working: each runs at a tiny size, as a script.

Each script starts its own local control plane (and, for the spawn
overhead, the test kubelet), real hubs and the loopback GitHub stand-in;
here only its printed table is checked: it parses, every time is positive,
and the launch burst reaches the git host once with hubext. No timing is
asserted.
"""

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import jupyterhub.utils
import kubespawner.spawner
import pytest
from tornado.httpclient import AsyncHTTPClient

from benchmarks import _common
from devstack.net import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.hub, pytest.mark.slow]

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NUMBER = r"(\d+(?:\.\d+)?)"


def run_script(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


SMALL_RUN = (
    "--sequential",
    "2",
    "--concurrent",
    "3",
    "--rounds",
    "1",
    "--timeout",
    "180",
    "--container-start",
    "0.05",
    "--poll",
    "0.05",
    "--settle",
    "2",
)


@pytest.mark.parametrize(
    "options, pods",
    [
        (("--server-start", "0.5"), "a modelled notebook server listening after 0.5 s"),
        (("--notebook", "singleuser", "--returning"), "jupyterhub-singleuser"),
        (
            ("--server-start", "0.5", "--ahead"),
            "a modelled notebook server listening after 0.5 s",
        ),
    ],
    ids=[
        "modelled notebook, new users",
        "jupyterhub-singleuser, returning users",
        "new users, launches prepared ahead",
    ],
)
def test_spawn_overhead_small(options, pods):
    out = run_script("spawn_overhead.py", *SMALL_RUN, *options)
    # the kubelet's modelled cost of each container start, as used
    assert "test kubelet container start cost 0.05 s per container" in out, out
    assert f"pods run {pods};" in out, out
    assert "the hubs poll every 0.05 s" in out, out
    users = "returning" if "--returning" in options else "new"
    assert f"x 1 round(s) of {users} users" in out, out
    if "--ahead" in options:
        assert "each launch prepared ahead as BinderHub's check" in out, out
        # the hub ran hubext's steps once ahead of each of the 5 launches
        for step in ("fetch .resources", "ensure PVC", "ensure SSH Secret"):
            assert re.search(
                rf"^ahead\s+hubext\s+{re.escape(step)}\s+5\s", out, re.M
            ), out
    rows = {
        m[1]: [float(x) for x in m.groups()[1:]]
        for m in re.finditer(
            r"^(sequential|concurrent)\s+(\d+)" + rf"\s+{NUMBER}" * 5 + r"\s*$",
            out,
            re.M,
        )
    }
    assert set(rows) == {"sequential", "concurrent"}, out
    assert rows["sequential"][0] == 2 and rows["concurrent"][0] == 3
    # medians, p90s and the ratio are all real, positive measurements
    for values in rows.values():
        assert all(v > 0 for v in values[1:]), out
        plain_median, _, hubext_median, _, ratio = values[1:]
        assert ratio == pytest.approx(hubext_median / plain_median, abs=0.01)

    intervals = {
        m[1]: (float(m[2]), float(m[3]), float(m[4]))
        for m in re.finditer(
            rf"^  (sequential|concurrent)\s+{NUMBER} \[{NUMBER}, {NUMBER}\]", out, re.M
        )
    }
    assert set(intervals) == {"sequential", "concurrent"}, out
    for phase, (ratio, low, high) in intervals.items():
        assert low <= ratio <= high, (phase, out)
        assert ratio == pytest.approx(rows[phase][-1], abs=0.01)

    steps = {
        (m[1], m[2], m[3].strip()): (int(m[4]), float(m[5]), float(m[6]))
        for m in re.finditer(
            r"^(sequential|concurrent)\s+(plain|hubext)\s+(\D+?)\s+(\d+)"
            rf"\s+{NUMBER}\s+{NUMBER}\s*$",
            out,
            re.M,
        )
    }
    # each launch ran each step of its spawner once: 2 sequential, 3 at once
    for phase, n in (("sequential", 2), ("concurrent", 3)):
        for step in ("fetch .resources", "ensure PVC", "ensure SSH Secret"):
            count, median, p90 = steps[(phase, "hubext", step)]
            # 0.000 when the hub knew the answer and asked nothing
            assert count == n and 0 <= median <= p90, (phase, step, out)
            assert (phase, "plain", step) not in steps
        for kind in ("plain", "hubext"):
            count, median, p90 = steps[(phase, kind, "start, to pod running")]
            assert count == n and 0 < median <= p90, (phase, kind, out)
            assert steps[(phase, kind, "options step")][0] == n

    # what a concurrent round cost: its hub and the other parts are shares
    # of the machine; the kubelet's own process, the pods' processes and
    # the launches' clients are there (printed to 0.01 s, so a round of three
    # launches still shows the kubelet's share)
    header = re.search(r"^spawner\s+hub\s+(.+)$", out, re.M)
    assert header, out
    parts = re.split(r"\s{2,}", header[1].strip())
    assert parts[0] == "machine" and "kube-apiserver" in parts, out
    cpu = {
        m[1]: [float(x) for x in m[2].split()]
        for m in re.finditer(r"^(plain|hubext)\s+((?:\d+\.\d\d\s*)+)$", out, re.M)
    }
    assert set(cpu) == {"plain", "hubext"}, out
    for hub, machine, *rest in cpu.values():
        named = dict(zip(parts[1:], rest, strict=True))
        assert 0 < hub < machine, out
        assert named["kubelet"] > 0 and named["pods"] > 0, out
        assert named["clients"] >= 0, out
        assert hub + sum(named.values()) <= machine * 1.05, out


async def test_a_steady_poll_replaces_the_hubs_backoff(monkeypatch):
    for module in (jupyterhub.utils, kubespawner.spawner):  # restored afterwards
        monkeypatch.setattr(module, "exponential_backoff", module.exponential_backoff)
    _common.poll_steadily(0.01)
    backoff = kubespawner.spawner.exponential_backoff
    assert backoff is jupyterhub.utils.exponential_backoff

    polls = []

    def ready(until):
        polls.append(time.monotonic())
        return time.monotonic() >= until and "ok"

    until = time.monotonic() + 1
    assert await backoff(ready, "not ready", timeout=10, until=until) == "ok"
    # JupyterHub's own backoff polls about 5 times in a second (waits drawn
    # up to 0.2, 0.4, 0.8 s ...); a steady 0.01 s poll, dozens of times
    assert len(polls) >= 15, len(polls)
    with pytest.raises(asyncio.TimeoutError, match="not ready"):
        await backoff(lambda: False, "not ready", timeout=0.05)


async def test_the_modelled_notebook_listens_after_its_start_and_answers():
    """What the kubelet runs for a pod: probed with `--help-all`, then
    given `--ip`/`--port` among jupyterhub-singleuser's own options."""
    with _common.modelled_notebook(0.3) as program:
        await _serve_and_ask(program)
    assert not program.exists()  # removed with its directory


async def _serve_and_ask(program):
    probe = subprocess.run([str(program), "--help-all"], timeout=30)
    assert probe.returncode == 0
    port = free_port()
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(program),
        "--SingleUserNotebookApp.default_url=/lab",
        "--ip=127.0.0.1",
        f"--port={port}",
    )
    try:
        resp = None
        while resp is None and time.monotonic() - began < 30:
            try:
                resp = await AsyncHTTPClient().fetch(
                    f"http://127.0.0.1:{port}/user/a/lab?x=1", raise_error=False
                )
                if resp.code == 599:  # not listening yet
                    resp = None
            except OSError:
                pass
            await asyncio.sleep(0.05)
        assert resp is not None and resp.code == 200, resp
        assert time.monotonic() - began >= 0.3  # not before its modelled start
    finally:
        proc.kill()
        await proc.wait()


def test_launch_burst_small():
    out = run_script("launch_burst.py", "--users", "10", "--timeout", "180")
    rows = {
        m[1].strip(): (int(m[2]), int(m[3]), float(m[4]))
        for m in re.finditer(rf"^(\D.*?)\s+(\d+)\s+(\d+)\s+{NUMBER}\s*$", out, re.M)
    }
    assert set(rows) == {
        "hubext",
        "hubext, cache_size=0",
        "fresh fetcher per spawn",
    }, out
    # one request for ten launches of one commit: cache and in-flight sharing
    assert rows["hubext"][0] == 1
    # the yardstick really asks the host once per launch
    assert rows["fresh fetcher per spawn"][0] == 10
    for requests, with_file, seconds in rows.values():
        assert requests >= 1 and seconds > 0
        # every launch got the repository's own .resources, not the defaults
        assert with_file == 10


def test_refusal_time_small():
    out = run_script("refusal_time.py", "--launches", "1", "--retry-delay", "2")
    rows = re.findall(
        rf"^(\.resources mistake|2nd project at 1 of 1)\s+(BinderHub as shipped|"
        rf"pre_launch_hook|hubext)\s+1\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x$",
        out,
        re.M,
    )
    assert len(rows) == 6, out
    shown = {(refusal, variant): float(times) for refusal, variant, *_, times in rows}
    # hubext shows each refusal once; BinderHub alone repeats it per attempt
    assert shown[(".resources mistake", "hubext")] == 1, out
    assert shown[("2nd project at 1 of 1", "hubext")] == 1, out
    assert shown[(".resources mistake", "BinderHub as shipped")] > 1, out
    assert all(float(median) > 0 for _, _, median, _, _ in rows), out
