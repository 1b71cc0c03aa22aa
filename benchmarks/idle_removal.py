"""Benchmark: one idle-removal pass, hubext-idle vs jupyterhub-idle-culler.

A real JupyterHub (InstantSpawner, real configurable-http-proxy) is given
`--users` users and `--servers` named servers, written straight into its
database with JupyterHub's ORM: a `--running` fraction running, the rest
stopped; an `--idle` fraction last active 8-30 days ago, the rest 0-5 days
ago. Each tool then makes one full pass with a 7-day timeout against an
identical copy of that database, through a loopback proxy that counts the
hub API requests. Printed side by side: wall time, hub API requests, servers
removed, idle servers left behind, time per removal.

Two phases, each with its own hub state: "full" as above, and "equal",
where every idle server is running, so the culler (which sees running
servers only) has the same removals as hubext-idle: equal work.

    python benchmarks/idle_removal.py --users 5000 --servers 10000
"""

import argparse
import asyncio
import os
import random
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from jupyterhub import orm  # noqa: E402

from tests.fixtures.hubproc import make_hub  # noqa: E402
from tests.helpers.httpproxy import CountingProxy  # noqa: E402

TOKEN = "bench-" + "1" * 40
SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
HUB_CONFIG = f"""
c.JupyterHub.services.append({{"name": "idle-bench", "api_token": "{TOKEN}"}})
c.JupyterHub.load_roles.append(
    {{"name": "idle-bench", "scopes": {SCOPES!r}, "services": ["idle-bench"]}}
)
c.JupyterHub.log_level = "INFO"
c.JupyterHub.last_activity_interval = 0
c.JupyterHub.api_page_max_limit = 200
"""
CULLER_ONE_PASS = """
import asyncio, logging, os, sys
from jupyterhub_idle_culler import cull_idle
logging.basicConfig(level=logging.WARNING)
asyncio.run(cull_idle(
    url=sys.argv[1], api_token=os.environ["JUPYTERHUB_API_TOKEN"],
    inactive_limit=int(sys.argv[2]), logger=logging.getLogger("culler"),
    remove_named_servers=True, concurrency=10, api_page_size=200,
))
"""
TIMEOUT = 7 * 24 * 3600


def populate(
    db_url: str,
    users: int,
    servers: int,
    running: float,
    idle: float,
    idle_running: bool = False,
):
    """Write users and named servers into the hub database; return the plan.

    ``idle_running``: every idle server is running (the equal-work state:
    the culler, which sees running servers only, then has the same
    removals as hubext-idle); the others are running at the ``running``
    fraction.
    """
    rng = random.Random(42)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    db = orm.new_session_factory(db_url)()
    people = [orm.User(name=f"user{i:05d}", created=now) for i in range(users)]
    db.add_all(people)
    plan = {"running": 0, "idle_running": 0, "idle_stopped": 0}
    for i in range(servers):
        user = people[i % users]
        name = f"project-{i:05d}"
        is_idle = rng.random() < idle
        seen = now - (
            timedelta(days=rng.uniform(8, 30))
            if is_idle
            else timedelta(days=rng.uniform(0, 5))
        )
        spawner = orm.Spawner(
            user=user, name=name, last_activity=seen, started=seen, state={}
        )
        runs = rng.random() < running  # drawn in both states: same idle set
        if runs or (is_idle and idle_running):
            spawner.server = orm.Server(
                ip="127.0.0.1", port=1, base_url=f"/user/{user.name}/{name}/"
            )
            spawner.state = {"instant_running": True}
            plan["running"] += 1
            plan["idle_running"] += is_idle
        else:
            plan["idle_stopped"] += is_idle
        db.add(spawner)
    db.commit()
    db.close()
    return plan


async def run_tool(label: str, argv: list[str], env: dict, proxy) -> dict:
    """Run one tool's pass in a subprocess; time it and count its requests."""
    proxy.reset()
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    wall = time.monotonic() - started
    if proc.returncode:
        raise RuntimeError(f"{label} exited {proc.returncode}:\n{out.decode()[-3000:]}")
    return {"tool": label, "wall": wall, "requests": proxy.total}


async def count_named(hub) -> tuple[int, int]:
    """(named servers left, of which idle by the 7-day rule) via the API."""
    left = idle_left = 0
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=TIMEOUT)
    offset = 0
    while True:
        code, page = await hub.api(
            "GET",
            f"/users?include_stopped_servers=1&offset={offset}&limit=200",
            headers={"Accept": "application/jupyterhub-pagination+json"},
        )
        assert code == 200, page
        for user in page["items"]:
            for name, server in user["servers"].items():
                if not name:
                    continue
                left += 1
                seen = datetime.fromisoformat(server["last_activity"])
                idle_left += seen < cutoff
        following = page["_pagination"]["next"]
        if not following:
            return left, idle_left
        offset = following["offset"]


async def one_run(hub, pristine: Path, db: Path, tool: str, argv, env, proxy):
    """Restore the pristine database, start the hub, run one tool's pass."""
    shutil.copy(pristine, db)
    await hub.start()
    try:
        before, _ = await count_named(hub)
        result = await run_tool(tool, argv, env, proxy)
        after, idle_left = await count_named(hub)
    finally:
        await hub.stop()
    result.update(removed=before - after, idle_left=idle_left)
    return result


async def bench(
    users: int,
    servers: int,
    running: float,
    idle: float,
    workdir,
    idle_running: bool = False,
):
    """Build the hub state once, then one pass of each tool on a fresh copy."""
    hub = make_hub(HUB_CONFIG, workdir=workdir)
    # a hub checks every running server at start: thousands take minutes
    hub.start_timeout = 60 + servers / 10
    db = hub.dir / "jupyterhub.sqlite"
    await hub.start()  # creates the schema, roles and the service
    await hub.stop()
    plan = populate(f"sqlite:///{db}", users, servers, running, idle, idle_running)
    pristine = hub.dir / "pristine.sqlite"
    shutil.copy(db, pristine)
    proxy = CountingProxy(hub.url)
    api = proxy.url + "/hub/api"
    env = dict(hub.env, JUPYTERHUB_API_TOKEN=TOKEN)
    hubext = [
        sys.executable,
        *("-m", "hubext.idle", "--once", f"--url={api}", f"--timeout={TIMEOUT}"),
        "--notice-before=0",
        "--concurrency=10",
        "--page-size=200",
        f"--state-file={hub.dir / 'idle-state.json'}",
        f"--config={hub.dir / 'no-config.py'}",
        "--log-level=WARN",
    ]
    culler = [sys.executable, "-c", CULLER_ONE_PASS, api, str(TIMEOUT)]
    results = []
    for tool, argv in (("hubext-idle", hubext), ("jupyterhub-idle-culler", culler)):
        results.append(await one_run(hub, pristine, db, tool, argv, env, proxy))
    proxy.close()
    return plan, results


def table(title, users, servers, plan, results) -> str:
    idle = plan["idle_running"] + plan["idle_stopped"]
    lines = [
        f"{title}: {users} users, {servers} named servers "
        f"({plan['running']} running); idle > 7 days: {plan['idle_running']} "
        f"running + {plan['idle_stopped']} stopped = {idle}",
        "",
        f"{'tool':<24} {'wall s':>8} {'API requests':>13} {'removed':>8} "
        f"{'idle left':>10} {'ms per removal':>15}",
    ]
    for r in results:
        per = f"{1000 * r['wall'] / r['removed']:.1f}" if r["removed"] else "-"
        lines.append(
            f"{r['tool']:<24} {r['wall']:>8.1f} {r['requests']:>13} "
            f"{r['removed']:>8} {r['idle_left']:>10} {per:>15}"
        )
    return "\n".join(lines)


#: The two states: as a hub holds them (stopped idle projects included, which
#: only hubext-idle removes), and equal work (every idle project running, so
#: both tools remove the same servers).
PHASES = {"full": False, "equal": True}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--servers", type=int, default=10000)
    parser.add_argument("--running", type=float, default=0.3, help="fraction")
    parser.add_argument("--idle", type=float, default=0.5, help="fraction")
    parser.add_argument(
        "--phase",
        choices=[*PHASES, "both"],
        default="both",
        help="full: the --running fraction of servers running, idle or not; "
        "equal: every idle server running (the same removals for both tools)",
    )
    parser.add_argument("--workdir", help="hub directory (default: a temp dir)")
    args = parser.parse_args(argv)
    workdir = args.workdir or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), f"hubext-idle-bench-{os.getpid()}"
    )
    phases = list(PHASES) if args.phase == "both" else [args.phase]
    out = {}
    for phase in phases:
        plan, results = asyncio.run(
            bench(
                args.users,
                args.servers,
                args.running,
                args.idle,
                os.path.join(workdir, phase),
                idle_running=PHASES[phase],
            )
        )
        print(table(phase, args.users, args.servers, plan, results) + "\n", flush=True)
        out[phase] = {"plan": plan, "results": results}
    return out


if __name__ == "__main__":
    main()
