"""The spawner's launch steps that need no cluster: how its three requests
(`.resources`, the claim, the key Secret) run together, and how steps the
hub already knows the answer to cost no trip through the event loop."""

import asyncio

import pytest

from hubext.errors import UserFacingError
from hubext.spawner import _all_or_first_error


async def test_the_steps_run_at_once():
    # the first step can only end once the second has begun: one after the
    # other, this would never finish
    second_began = asyncio.Event()

    async def first():
        await second_began.wait()
        return "resources"

    async def second():
        second_began.set()
        return "claim"

    results = await asyncio.wait_for(_all_or_first_error(first, second), 10)
    assert results == ["resources", "claim"]


async def test_the_first_failure_in_order_is_shown_after_all_have_ended():
    ended = []

    async def bad_file():
        await asyncio.sleep(0.05)  # fails last, is shown all the same
        ended.append("file")
        raise UserFacingError(".resources line 1: bad")

    async def refused_claim():
        ended.append("claim")
        raise UserFacingError("The cluster refused to create your storage volume")

    async def secret():
        await asyncio.sleep(0.02)
        ended.append("secret")
        return "alice-ssh-key"

    with pytest.raises(UserFacingError, match=r"^\.resources line 1"):
        await _all_or_first_error(bad_file, refused_claim, secret)
    assert sorted(ended) == ["claim", "file", "secret"]  # none left running


async def test_steps_known_at_once_make_no_trip_through_the_event_loop():
    # a burst of launches keeps the hub's loop busy: a launch whose claim,
    # Secret and .resources are all known must not wait for its turn
    loop = asyncio.get_running_loop()
    ran = []
    loop.call_soon(ran.append, "other work")
    results = await _all_or_first_error(lambda: "resources", lambda: "claim")
    assert results == ["resources", "claim"]
    assert ran == []

    async def secret():
        return "alice-ssh-key"

    results = await _all_or_first_error(lambda: "resources", secret)
    assert results == ["resources", "alice-ssh-key"]
    assert ran == ["other work"]  # one step had to ask: the loop ran


async def test_a_step_failing_at_once_still_lets_the_others_end():
    ended = []

    def bad_file():
        raise UserFacingError(".resources line 1: bad")

    async def claim():
        await asyncio.sleep(0.02)
        ended.append("claim")
        return "alice-nfs-pvc"

    with pytest.raises(UserFacingError, match=r"^\.resources line 1"):
        await _all_or_first_error(bad_file, claim)
    assert ended == ["claim"]
