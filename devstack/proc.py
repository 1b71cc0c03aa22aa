"""Child processes that never outlive the stack that started them."""

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for Popen: the kernel kills the child when we die.

    `atexit` handlers cover normal exits; this covers a test run that is
    killed outright, so no apiserver or single-user server is left behind.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass  # not Linux: the atexit handlers still clean up
