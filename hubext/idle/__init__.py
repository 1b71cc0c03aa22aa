"""hubext-idle: removes projects (named servers) idle for a week.

Run as a JupyterHub service; see docs/how-to/idle-removal.md.
"""

from .app import IdleService, main

__all__ = ["IdleService", "main"]
