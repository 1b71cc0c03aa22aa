"""A token that reaches one server and can do nothing else.

Why: a user controls their server, so any token sent to it is theirs to
keep and replay. The service's own token lists and deletes every user's
servers; it must never go there. So for each question the service mints a
token owned by that server's user, with the one scope
`access:servers!server={user}/{name}` (no more than the server's own token
already allows), short-lived, and deletes it once the question is answered
or has failed.

Minting a token for another user takes the `tokens` scope: JupyterHub
checks the new token's scopes against its owner's (every user holds access
to their own servers), not against the service's. So `tokens` could mint
any user's permissions, an admin's too; docs/how-to/idle-removal.md says
what that means for the service's own token.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

from .hubapi import HubAPI, HubAPIError

# The hub does not count a token whose note starts with "Server at " as its
# user's activity; asking a server about itself is not the user's doing.
NOTE = "Server at {path}: hubext-idle activity check, deleted after use"


class TokenError(Exception):
    """No token could be minted; the hub's record decides."""


def server_scope(user: str, server: str) -> str:
    """The scope of a token that may reach `user`'s server `server` only."""
    return f"access:servers!server={user}/{server}"


@asynccontextmanager
async def server_token(
    api: HubAPI, user: str, server: str, path: str, lifetime: int
) -> AsyncIterator[str]:
    """A token for one server, deleted on leaving the block however it ends."""
    tokens = f"/users/{quote(user, safe='')}/tokens"
    body = {
        "scopes": [server_scope(user, server)],
        "expires_in": lifetime,
        "note": NOTE.format(path=path),
    }
    try:
        code, model = await api.fetch("POST", tokens, body=body)
    except HubAPIError as e:
        raise TokenError(f"minting a token for {user}/{server} failed: {e}") from None
    if code != 201 or not isinstance(model, dict) or not model.get("token"):
        raise TokenError(_why(code, model, user, server))
    try:
        yield model["token"]
    finally:
        await _delete(api, f"{tokens}/{quote(str(model.get('id')), safe='')}", lifetime)


async def _delete(api: HubAPI, path: str, lifetime: int) -> None:
    """Delete a minted token; if that fails it still expires on its own."""
    try:
        code, body = await api.fetch("DELETE", path)
    except HubAPIError as e:
        code, body = e.code, str(e)
    if code not in (204, 404):
        api.log.warning(
            "Could not delete the activity-check token %s (HTTP %s: %s); "
            "it expires within %ss",
            path,
            code,
            str(body)[:200],
            lifetime,
        )


def _why(code: int, body, user: str, server: str) -> str:
    detail = body.get("message") if isinstance(body, dict) else body
    if code == 403:
        return (
            f"HTTP 403 minting a token for {user}/{server}: give the service's "
            "role the `tokens` scope (for this user, if it is filtered)"
        )
    return f"HTTP {code} minting a token for {user}/{server}: {str(detail)[:200]}"
