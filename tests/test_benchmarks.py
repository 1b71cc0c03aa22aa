"""The benchmarks keep working: each runs at a small size here."""

import pytest

from benchmarks import idle_removal

pytestmark = [pytest.mark.hub, pytest.mark.slow]


def test_idle_benchmark_small(tmp_path, capsys):
    out = idle_removal.main(
        ["--users", "12", "--servers", "30", "--workdir", str(tmp_path / "hub")]
    )
    full, equal = out["full"], out["equal"]
    plan = full["plan"]
    by_tool = {r["tool"]: r for r in full["results"]}
    idle = plan["idle_running"] + plan["idle_stopped"]
    assert plan["idle_stopped"] > 0 and plan["idle_running"] > 0
    # hubext-idle removes every idle project, running or stopped
    assert by_tool["hubext-idle"]["removed"] == idle
    assert by_tool["hubext-idle"]["idle_left"] == 0
    # the stock culler never sees stopped servers
    assert by_tool["jupyterhub-idle-culler"]["removed"] == plan["idle_running"]
    assert by_tool["jupyterhub-idle-culler"]["idle_left"] == plan["idle_stopped"]
    assert all(r["requests"] > 0 for r in full["results"])
    # equal work: every idle project running, both tools remove them all
    plan = equal["plan"]
    assert plan["idle_stopped"] == 0 and plan["idle_running"] == idle
    for result in equal["results"]:
        assert result["removed"] == idle, result
        assert result["idle_left"] == 0, result
    printed = capsys.readouterr().out
    assert printed.count("ms per removal") == 2
    assert "equal: 12 users" in printed
