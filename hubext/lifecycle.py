"""A launch's life around KubeSpawner's start: what the user sees when it fails.

Four mechanics that are not steps of building the pod:

- a refusal reaches the launch page: it becomes JupyterHub's user-facing
  spawn error (`spawn_error`), and it waits until someone follows the
  progress stream (`ProgressWatch`), since BinderHub relays only what that
  stream says;
- a failed setup (init) container ends the start at once, with its log
  tail, instead of a start timeout minutes later (`start_unless_setup_fails`);
- a refused BinderHub launch's server is removed as soon as the refusal was
  shown (`remove_later`): BinderHub retries under a new name 4 s later, and
  each refused attempt left behind would count against the project quota;
- the line on what the server was given reaches the page even when the
  server is ready before its progress is read (`ready_with_granted`).
"""

import asyncio
import html
from datetime import datetime, timedelta

from .errors import UserFacingError

try:  # JupyterHub 6 has an exception made for user-facing spawn failures
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub 5 reads `jupyterhub_message` only
    SpawnException = None

#: Seconds between the progress stream closing on a refusal and the removal
#: of the server that never ran: enough for the hub to write the "failed"
#: event, well under BinderHub's first retry delay (4 s).
REMOVAL_GRACE = 1

#: Seconds after the refusal wait before a refused server is removed when
#: nobody followed its progress (a REST launch), so nothing stays behind.
UNWATCHED_REMOVAL_DELAY = 5


def spawn_error(error: UserFacingError) -> Exception:
    """The exception JupyterHub shows to the user as "Spawn failed: <message>"."""
    if SpawnException is not None:
        exc = SpawnException(error.message, reason=type(error).__name__)
    else:
        exc = RuntimeError(error.message)
    # The progress stream (what BinderHub relays) reads this attribute and
    # would otherwise show SpawnException's str(), status code and all.
    exc.jupyterhub_message = error.message
    return exc


class ProgressWatch:
    """Whether anyone follows this start's progress stream yet.

    BinderHub asks for the stream right after the hub accepts the launch; a
    refusal that lands before that is only seen as "not starting", so a
    refusal waits for the stream (`until_watched`) before it is raised.
    """

    def __init__(self):
        self._watched = asyncio.Event()

    def watched(self) -> None:
        self._watched.set()

    async def until_watched(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._watched.wait(), timeout)
        except asyncio.TimeoutError:
            pass


def ready_with_granted(spawner, event: dict) -> dict:
    """The ready event, with the resources line when no earlier event could
    carry it.

    JupyterHub stops reading a start's progress events once the start is
    done, so a server that is ready before anyone reads its progress (or
    before the first event is taken) never shows that line; the ready event
    always reaches the page. Used as the spawner's ``progress_ready_hook``.
    """
    if not spawner._granted or spawner._granted_shown:
        return event
    event = dict(event)
    event["message"] = f"{spawner._granted}\n{event.get('message', '')}"
    if "html_message" in event:
        event["html_message"] = (
            f"{html.escape(spawner._granted)}<br>{event['html_message']}"
        )
    return event


def failed_init(pod: dict | None, since: datetime) -> str | None:
    """Why the pod's init containers failed, or None while nothing failed.

    KubeSpawner waits for a pod to run until `start_timeout`; a pod whose
    init container failed (Failed, or restarting in CrashLoopBackOff) never
    will, and the user would only read "did not start in N seconds". A pod
    being deleted or made before `since` is an earlier start's, not ours.
    """
    if not pod or pod["metadata"].get("deletionTimestamp"):
        return None
    created = pod["metadata"].get("creationTimestamp")
    if not created or _parse_time(created) < since - timedelta(seconds=2):
        return None
    status = pod.get("status") or {}
    for container in status.get("initContainerStatuses") or []:
        for state in (container.get("state"), container.get("lastState")):
            ended = (state or {}).get("terminated") or {}
            if ended.get("exitCode"):
                detail = (ended.get("message") or ended.get("reason") or "").strip()
                return (
                    f"the setup step {container['name']!r} of your notebook failed "
                    f"(exit code {ended['exitCode']}): {detail or 'no output'}"
                )
    return None


def _parse_time(value) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _until_setup_fails(spawner, since: datetime) -> str:
    """Return once the spawner's pod reports a failed init container."""
    while True:
        await asyncio.sleep(1)
        reflector = spawner.pod_reflector
        key = f"{spawner.namespace}/{spawner.pod_name}"
        reason = failed_init(reflector.pods.get(key) if reflector else None, since)
        if reason:
            return reason


async def start_unless_setup_fails(spawner, started, since: datetime):
    """KubeSpawner's start (`started`), cut short with a message if setup fails."""
    watch = asyncio.ensure_future(_until_setup_fails(spawner, since))
    try:
        await asyncio.wait({started, watch}, return_when=asyncio.FIRST_COMPLETED)
        if watch.done() and not started.done():
            started.cancel()
            raise spawn_error(
                UserFacingError(
                    f"Your notebook could not start: {watch.result()}. If the "
                    "repository's image is your own, check its Dockerfile; "
                    "otherwise send this message to the hub admins."
                )
            )
        return await started
    finally:
        watch.cancel()


def remove_later(spawner, delay: float) -> None:
    """Remove `spawner`'s server after `delay` seconds if it never ran.

    Safe to call more than once: a server that was removed, relaunched,
    started or replaced meanwhile is left alone.
    """
    loop = asyncio.get_running_loop()
    loop.call_later(delay, lambda: asyncio.ensure_future(_remove_logged(spawner)))


async def _remove_logged(spawner) -> None:
    try:
        await _remove_if_never_ran(spawner)
    except Exception:
        spawner.log.exception("Could not remove refused server %s", spawner._log_name)


async def _remove_if_never_ran(spawner) -> None:
    user, name = spawner.user, spawner.name
    if (
        user.spawners.get(name) is not spawner
        or spawner.active
        or spawner.launch_record is not None
    ):
        return  # gone, relaunched, running, or replaced meanwhile
    spawner.log.info(
        "Removing %s: its launch was refused and it never ran", spawner._log_name
    )
    # what JupyterHub's own DELETE .../servers/{name} {"remove": true} does
    await user._delete_spawner(spawner)
    user.db.delete(spawner.orm_spawner)
    user.spawners.pop(name, None)
    user.db.commit()
