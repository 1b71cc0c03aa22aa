"""Running a shell script as a container of the test kubelet would run it."""

import os

from devstack import containers


async def run_in_view(view: containers.View, script: str, tmp_path) -> tuple:
    """`sh -c script` in `view` (the container's mounts and user); its exit
    code and output lines."""
    log = tmp_path / "out"
    env = {"PATH": os.environ["PATH"], "HOME": view.home}
    code = await containers.run_to_end(
        view.argv(["sh", "-c", script]), env, log, tmp_path
    )
    return code, log.read_text().splitlines()
