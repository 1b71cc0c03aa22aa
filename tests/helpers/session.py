"""A signed-in browser session against a hub under test, without a browser:
the login form's cookies, and pages fetched with them."""

from http.cookies import SimpleCookie
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient


async def login(hub, username):
    """A browser session for `username` through the hub's login form."""
    client = AsyncHTTPClient()
    jar = SimpleCookie()
    resp = await client.fetch(hub.url + "/hub/login", raise_error=False)
    for header in resp.headers.get_list("Set-Cookie"):
        jar.load(header)
    xsrf = jar["_xsrf"].value
    resp = await client.fetch(
        hub.url + "/hub/login",
        method="POST",
        body=urlencode({"username": username, "password": "pw", "_xsrf": xsrf}),
        headers={"Cookie": "; ".join(f"{k}={m.value}" for k, m in jar.items())},
        follow_redirects=False,
        raise_error=False,
    )
    assert resp.code == 302, resp.body
    for header in resp.headers.get_list("Set-Cookie"):
        jar.load(header)
    return "; ".join(f"{k}={m.value}" for k, m in jar.items())


async def page(hub, path, cookie, follow_redirects=True):
    """`(status, body)` of a page of the hub, fetched as the session's user."""
    resp = await AsyncHTTPClient().fetch(
        hub.url + path,
        headers={"Cookie": cookie},
        follow_redirects=follow_redirects,
        raise_error=False,
    )
    return resp.code, resp.body.decode()
