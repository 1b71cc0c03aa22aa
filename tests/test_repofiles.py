"""Reading `.resources` from the launched repository at the launched commit.

Every host here is real on loopback: a GitHub/GitLab API stand-in and a
real git repository behind ``git http-backend`` (tests/fixtures/githosts.py).
"""

import asyncio
import base64
import logging
import os
import time
from urllib.parse import quote

import pytest
from tornado.httpclient import AsyncHTTPClient

from hubext.errors import UserFacingError
from hubext.repofiles import (
    NOT_CACHED,
    LaunchRef,
    RepoFileError,
    RepoFileFetcher,
    parse_launch,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
HEAD_SHA = "fedcba9876543210fedcba9876543210fedcba98"
TOKEN = "ghp_s3cretTOKENvalue1234567890"


def launch(prefix, spec, sha, repo_url, **extra):
    """``user_options`` as BinderHub's launcher sends them."""
    options = {
        "image": f"registry.example.edu/binder/r2d-g5b5b759-{prefix}:{sha}",
        "repo_url": repo_url,
        "token": "server-token",
        "binder_ref_url": repo_url,
        "binder_launch_host": "https://binder.example.edu/",
        "binder_request": f"v2/{prefix}/{spec}/HEAD",
        "binder_persistent_request": f"v2/{prefix}/{spec}/{sha}",
        "binder_client_ip": "127.0.0.1",
    }
    options.update(extra)
    return options


def gh(repo="org/repo", sha=SHA):
    return launch("gh", repo, sha, f"https://github.com/{repo}")


def gl(project="group/sub/project", sha=SHA, host="gitlab.example.edu"):
    return launch("gl", quote(project, safe=""), sha, f"https://{host}/{project}.git")


def git(url, sha=SHA):
    return launch("git", quote(url, safe=""), sha, url)


# --- parse_launch --------------------------------------------------------------


@pytest.mark.parametrize(
    "options, expected",
    [
        (
            gh(),
            LaunchRef(
                "github", "github.com", "org/repo", SHA, "https://github.com/org/repo"
            ),
        ),
        (
            gl(),
            LaunchRef(
                "gitlab",
                "gitlab.example.edu",
                "group/sub/project",
                SHA,
                "https://gitlab.example.edu/group/sub/project.git",
            ),
        ),
        (
            git("https://git.example.edu:8443/scm/lab/code.git"),
            LaunchRef(
                "git",
                "git.example.edu:8443",
                "https://git.example.edu:8443/scm/lab/code.git",
                SHA,
                "https://git.example.edu:8443/scm/lab/code.git",
            ),
        ),
        (
            gh("Org/Repo", sha="ab" * 32),  # sha256 repositories
            LaunchRef(
                "github",
                "github.com",
                "Org/Repo",
                "ab" * 32,
                "https://github.com/Org/Repo",
            ),
        ),
    ],
    ids=["github", "gitlab-nested", "git-port", "sha256"],
)
def test_parse_launch(options, expected):
    assert parse_launch(options) == expected


def _without(options, key):
    return {k: v for k, v in options.items() if k != key}


@pytest.mark.parametrize(
    "options, message",
    [
        (None, "The launch carries no options"),
        (_without(gh(), "binder_persistent_request"), "no 'binder_persistent_request'"),
        (_without(gh(), "repo_url"), "no 'repo_url'"),
        (
            {**gh(), "binder_persistent_request": "gh/org/repo"},
            "unexpected launch request",
        ),
        (
            {**gh(), "binder_persistent_request": "v2/gh/org/repo/HEAD"},
            "'HEAD', which is not a full commit hash",
        ),
        (gh(sha="1234567"), "'1234567', which is not a full commit hash"),
        ({**gh(), "image": f"r/x:{HEAD_SHA}"}, f"built from commit {HEAD_SHA}"),
        (
            {**gh(), "repo_url": "https://github.com/evil/repo"},
            "names the repository 'org/repo'",
        ),
        (
            launch("zenodo", "10.5281/zenodo.3242074", SHA, "https://doi.org/x"),
            "came from 'zenodo'",
        ),
        (git("git@git.example.edu:lab/code.git"), "is not an http:// or https:// URL"),
        (
            git("https://me:pw@git.example.edu/lab/code.git"),
            "contains a user name or password",
        ),
    ],
    ids=[
        "not-a-dict",
        "no-persistent",
        "no-repo-url",
        "malformed",
        "unresolved-ref",
        "short-sha",
        "image-mismatch",
        "repo-mismatch",
        "zenodo",
        "ssh-url",
        "credentials-in-url",
    ],
)
def test_parse_launch_errors(options, message):
    with pytest.raises(RepoFileError) as info:
        parse_launch(options)
    assert message in info.value.message
    assert isinstance(info.value, UserFacingError)
    assert "pw" not in info.value.message


def test_extra_prefix():
    options = launch("gl2", "lab%2Fcode", SHA, "https://gitlab.other.edu/lab/code.git")
    ref = parse_launch(options, {"gl2": "gitlab"})
    assert (ref.provider, ref.host, ref.repo) == (
        "gitlab",
        "gitlab.other.edu",
        "lab/code",
    )


# --- GitHub --------------------------------------------------------------------


def github_fetcher(forge, **kw):
    hosts = {"github.com": {"provider": "github", "api_url": forge.url}}
    return RepoFileFetcher(hosts=kw.pop("hosts", hosts), **kw)


@pytest.fixture
def github_repo(forge):
    forge.add("org/repo", SHA, ".resources", b"memr=4\n")
    forge.add("org/repo", HEAD_SHA, ".resources", b"memr=8\n")
    forge.heads["org/repo"] = HEAD_SHA
    return forge


async def test_github_reads_launched_commit_not_head(github_repo):
    fetcher = github_fetcher(github_repo)
    assert await fetcher.fetch(gh()) == b"memr=4\n"
    assert await fetcher.fetch(gh(sha=HEAD_SHA)) == b"memr=8\n"
    method, uri, headers = github_repo.requests[0]
    assert uri == f"/repos/org/repo/contents/.resources?ref={SHA}"
    assert headers["Accept"] == "application/vnd.github.raw"
    assert "Authorization" not in headers


async def test_github_missing_file_is_none(github_repo):
    github_repo.add("org/repo", "1" * 40, "README.md", b"hi\n")
    fetcher = github_fetcher(github_repo)
    assert await fetcher.fetch(gh(sha="1" * 40)) is None
    assert [u.split("?")[0] for _, u, _ in github_repo.requests] == [
        "/repos/org/repo/contents/.resources",
        "/repos/org/repo/commits/" + "1" * 40,
    ]


async def test_github_unknown_commit_is_an_error(github_repo):
    fetcher = github_fetcher(github_repo)
    with pytest.raises(
        RepoFileError, match="has no repository org/repo with commit 2222222"
    ):
        await fetcher.fetch(gh(sha="2" * 40))


async def test_github_token_sent_never_shown(github_repo, caplog):
    caplog.set_level(logging.DEBUG)
    github_repo.private["org/repo"] = TOKEN
    fetcher = github_fetcher(github_repo, tokens={"github.com": TOKEN})
    assert await fetcher.fetch(gh()) == b"memr=4\n"
    assert github_repo.requests[0][2]["Authorization"] == f"Bearer {TOKEN}"
    # a wrong token: 401, and the message names neither token
    github_repo.private["org/repo"] = "another-token"
    with pytest.raises(RepoFileError, match="HTTP 401") as info:
        await fetcher.fetch(gh(sha=HEAD_SHA))
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value.fields)
    assert caplog.records, "the fetcher logs what it read"
    assert TOKEN not in caplog.text


async def test_github_private_without_token(github_repo):
    github_repo.private["org/repo"] = TOKEN
    with pytest.raises(RepoFileError) as info:
        await github_fetcher(github_repo).fetch(gh())
    assert "or it is private" in info.value.message
    assert "c.RepoFileFetcher.tokens" in info.value.message


async def test_github_base64_json_form(github_repo):
    # Servers that ignore the raw media type answer with base64 JSON.
    github_repo.add("org/other", SHA, ".resources", b"gpu=1\n")

    fetcher = github_fetcher(github_repo)
    host = fetcher.host_for(parse_launch(gh("org/other")))
    host.file_headers = lambda: {"Accept": "application/vnd.github+json"}
    assert (
        await host.fetch_file(parse_launch(gh("org/other")), ".resources") == b"gpu=1\n"
    )


# --- GitLab --------------------------------------------------------------------


async def test_gitlab_any_host(forge):
    forge.add("group/sub/project", SHA, ".resources", b"cpur=2\n")
    forge.add("group/sub/project", HEAD_SHA, ".resources", b"cpur=3\n")
    forge.private["group/sub/project"] = TOKEN
    fetcher = RepoFileFetcher(
        hosts={"gitlab.example.edu": {"provider": "gitlab", "api_url": forge.url}},
        tokens={"gitlab.example.edu": TOKEN},
    )
    assert await fetcher.fetch(gl()) == b"cpur=2\n"
    _, uri, headers = forge.requests[0]
    assert uri == (
        "/api/v4/projects/group%2Fsub%2Fproject/repository/files/.resources/raw"
        f"?ref={SHA}"
    )
    assert headers["Private-Token"] == TOKEN
    assert await fetcher.fetch(gl(), "docs/none.md") is None


async def test_gitlab_private_without_token(forge):
    forge.add("group/sub/project", SHA, ".resources", b"cpur=2\n")
    forge.private["group/sub/project"] = TOKEN
    fetcher = RepoFileFetcher(
        hosts={"gitlab.example.edu": {"provider": "gitlab", "api_url": forge.url}}
    )
    with pytest.raises(
        RepoFileError, match="gitlab.example.edu has no repository group/sub/project"
    ):
        await fetcher.fetch(gl())


# --- generic git over HTTP -------------------------------------------------------


def git_fetcher(server, **kw):
    host = server.url.split("://", 1)[1]
    return RepoFileFetcher(hosts={host: {"provider": "git", "allow_http": True}}, **kw)


@pytest.mark.slow
async def test_git_reads_launched_commit(git_server):
    fetcher = git_fetcher(git_server)
    url = git_server.repo_url()
    commits = git_server.commits
    assert await fetcher.fetch(git(url, commits["launched"])) == b"memr=4\n"
    assert await fetcher.fetch(git(url, commits["head"])) == b"memr=8\n"
    assert (
        await fetcher.fetch(git(url, commits["launched"]), "docs/notes.md")
        == b"notes\n"
    )
    assert await fetcher.fetch(git(url, commits["none"])) is None
    with pytest.raises(RepoFileError, match="not a regular file"):
        await fetcher.fetch(git(url, commits["launched"]), "docs")


async def test_git_oversized_file(git_server):
    fetcher = git_fetcher(git_server, max_bytes=1000)
    with pytest.raises(RepoFileError, match="larger than the 1000 bytes"):
        await fetcher.fetch(git(git_server.repo_url(), git_server.commits["big"]))


#: A .resources file far above the cap, as the one that stalled a launch.
BIG = 40 * 2**20


@pytest.fixture
def huge_commit(git_server):
    """A commit whose .resources is BIG random (incompressible) bytes."""
    return git_server.add_commit("huge", {".resources": os.urandom(BIG)})


async def test_git_size_cap_holds_before_the_download(git_server, huge_commit):
    fetcher = git_fetcher(git_server)
    with pytest.raises(RepoFileError, match="larger than the 65536 bytes"):
        await fetcher.fetch(git(git_server.repo_url(), huge_commit))
    served = git_server.bytes_served
    assert served < 2**20, f"{served} bytes served to refuse a {BIG}-byte file"


async def test_git_cap_without_tree_filters(git_server, huge_commit):
    # Hosts that allow size filters but not tree depth still never send
    # the big file, only the commit's other small files.
    git_server.configure("uploadpackfilter.tree.allow", "false")
    fetcher = git_fetcher(git_server)
    url = git_server.repo_url()
    with pytest.raises(RepoFileError, match="larger than the 65536 bytes"):
        await fetcher.fetch(git(url, huge_commit))
    served = git_server.bytes_served
    assert served < 2**20, f"{served} bytes served to refuse a {BIG}-byte file"
    assert await fetcher.fetch(git(url, git_server.commits["launched"])) == b"memr=4\n"


async def test_git_host_without_size_filters(git_server):
    git_server.configure("uploadpackfilter.allow", "false")
    git_server.configure("uploadpackfilter.blob:none.allow", "true")
    options = git(git_server.repo_url(), git_server.commits["launched"])
    with pytest.raises(RepoFileError, match="uploadpack.allowFilter"):
        await git_fetcher(git_server).fetch(options)


async def test_git_unknown_commit(git_server):
    with pytest.raises(RepoFileError, match="has no commit 2222222"):
        await git_fetcher(git_server).fetch(git(git_server.repo_url(), "2" * 40))


async def test_git_unknown_repository(git_server):
    with pytest.raises(RepoFileError, match="has no repository"):
        await git_fetcher(git_server).fetch(git(git_server.repo_url("nope.git")))


async def test_git_private_token(git_server, caplog):
    caplog.set_level(logging.DEBUG)
    git_server.private["private.git"] = (
        "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    )
    options = git(git_server.repo_url("private.git"), git_server.commits["launched"])
    with pytest.raises(RepoFileError, match="asks for credentials") as info:
        await git_fetcher(git_server).fetch(options)
    assert "c.RepoFileFetcher.tokens" in info.value.message
    host = git_server.url.split("://", 1)[1]
    fetcher = git_fetcher(git_server, tokens={host: TOKEN})
    assert await fetcher.fetch(options) == b"memr=4\n"
    assert TOKEN not in caplog.text


async def test_git_redirect_refused(git_server):
    options = git(git_server.repo_url("moved.git"), git_server.commits["launched"])
    with pytest.raises(RepoFileError, match="redirected"):
        await git_fetcher(git_server).fetch(options)
    assert [p for _, p, _ in git_server.requests if p.startswith("project.git")] == []


async def test_git_needs_https_unless_allowed(git_server):
    host = git_server.url.split("://", 1)[1]
    fetcher = RepoFileFetcher(hosts={host: {"provider": "git"}})
    with pytest.raises(RepoFileError, match="is not an https:// URL"):
        await fetcher.fetch(git(git_server.repo_url(), git_server.commits["launched"]))
    assert git_server.requests == []


async def test_git_silent_server_times_out(silent_server):
    host = silent_server.url.split("://", 1)[1]
    fetcher = RepoFileFetcher(
        hosts={host: {"provider": "git", "allow_http": True}}, timeout=1
    )
    start = time.monotonic()
    with pytest.raises(RepoFileError, match="did not answer within 1 seconds"):
        await fetcher.fetch(git(f"{silent_server.url}/project.git"))
    assert time.monotonic() - start < 5
    assert silent_server.connections, "git did connect"


# --- the allowlist, redirects, limits ------------------------------------------


async def test_disallowed_host_makes_no_connection(forge, git_server):
    fetcher = RepoFileFetcher(
        hosts={"gitlab.example.edu": {"provider": "gitlab", "api_url": forge.url}}
    )
    with pytest.raises(RepoFileError, match="does not read files from github.com"):
        await fetcher.fetch(gh())
    with pytest.raises(RepoFileError, match="does not read files from 127.0.0.1"):
        await fetcher.fetch(git(git_server.repo_url(), git_server.commits["launched"]))
    assert forge.requests == [] and git_server.requests == []


async def test_provider_mismatch_is_an_admin_error(forge):
    fetcher = RepoFileFetcher(
        hosts={"github.com": {"provider": "gitlab", "api_url": forge.url}}
    )
    with pytest.raises(RepoFileError, match="configured as a gitlab host"):
        await fetcher.fetch(gh())
    assert forge.requests == []


async def test_redirect_to_other_host_refused(github_repo, other_forge):
    other_forge.add("org/repo", SHA, ".resources", b"gpu=8\n")
    github_repo.moved["org/repo"] = (
        f"{other_forge.url}/repos/org/repo/contents/.resources?ref={SHA}"
    )
    fetcher = github_fetcher(github_repo, tokens={"github.com": TOKEN})
    with pytest.raises(RepoFileError, match="not an allowed repository host") as info:
        await fetcher.fetch(gh())
    assert other_forge.requests == []
    assert TOKEN not in info.value.message


async def test_redirect_within_api_host_followed(github_repo):
    # GitHub answers a renamed repository with a redirect on its own API host.
    github_repo.add("org/renamed", SHA, ".resources", b"gpu=1\n")
    github_repo.moved["org/repo"] = (
        f"{github_repo.url}/repos/org/renamed/contents/.resources?ref={SHA}"
    )
    fetcher = github_fetcher(github_repo)
    assert await fetcher.fetch(gh()) == b"gpu=1\n"
    assert len(github_repo.requests) == 2


async def test_oversized_file(github_repo):
    github_repo.add("org/repo", "3" * 40, ".resources", b"# padding\n" * 10_000)
    fetcher = github_fetcher(github_repo, max_bytes=4096)
    with pytest.raises(RepoFileError, match="larger than the 4096 bytes"):
        await fetcher.fetch(gh(sha="3" * 40))


async def test_silent_server_times_out(silent_server):
    hosts = {"github.com": {"provider": "github", "api_url": silent_server.url}}
    fetcher = RepoFileFetcher(hosts=hosts, timeout=0.5)
    start = time.monotonic()
    with pytest.raises(RepoFileError, match="did not answer within 0.5 seconds"):
        await fetcher.fetch(gh())
    assert time.monotonic() - start < 3
    assert len(silent_server.connections) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error(github_repo, status):
    github_repo.status = status
    with pytest.raises(RepoFileError, match=f"internal error \\(HTTP {status}\\)"):
        await github_fetcher(github_repo).fetch(gh())


async def test_rate_limit_message(github_repo):
    github_repo.status = 429
    with pytest.raises(RepoFileError, match="limiting the number of requests"):
        await github_fetcher(github_repo).fetch(gh())


async def test_on_error_defaults_warns(github_repo, caplog):
    github_repo.status = 502
    fetcher = github_fetcher(
        github_repo, on_error="defaults", tokens={"github.com": TOKEN}
    )
    with caplog.at_level(logging.WARNING):
        assert await fetcher.fetch(gh()) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 502" in warnings[0].getMessage()
    assert TOKEN not in caplog.text


async def test_on_error_defaults_for_disallowed_host(forge, caplog):
    fetcher = RepoFileFetcher(hosts={}, on_error="defaults")
    with caplog.at_level(logging.WARNING):
        assert await fetcher.fetch(gh()) is None
    assert "does not read files from github.com" in caplog.text


# --- sharing and caching ---------------------------------------------------------


async def test_concurrent_fetches_share_one_request(github_repo):
    fetcher = github_fetcher(github_repo)
    results = await asyncio.gather(*(fetcher.fetch(gh()) for _ in range(100)))
    assert results == [b"memr=4\n"] * 100
    assert len(github_repo.requests) == 1
    assert await fetcher.fetch(gh()) == b"memr=4\n"  # from the cache
    assert len(github_repo.requests) == 1


async def test_cached_answers_without_a_request(github_repo):
    fetcher = github_fetcher(github_repo, max_bytes=4096)
    assert fetcher.cached(gh()) is NOT_CACHED
    assert github_repo.requests == []
    await fetcher.fetch(gh())
    assert fetcher.cached(gh()) == b"memr=4\n"
    github_repo.add("org/repo", "3" * 40, ".resources", b"# padding\n" * 10_000)
    with pytest.raises(RepoFileError):
        await fetcher.fetch(gh(sha="3" * 40))
    with pytest.raises(RepoFileError, match="larger than the 4096 bytes"):
        fetcher.cached(gh(sha="3" * 40))  # a lasting refusal, raised again
    assert len(github_repo.requests) == 2
    fetcher.hosts = {}  # the admins removed the host: refused, not cached
    with pytest.raises(RepoFileError, match="does not read files from github.com"):
        fetcher.cached(gh())
    fetcher.on_error = "defaults"
    assert fetcher.cached(gh()) is None


async def test_concurrent_failures_shared_and_not_cached(github_repo):
    github_repo.status = 503
    fetcher = github_fetcher(github_repo)
    results = await asyncio.gather(
        *(fetcher.fetch(gh()) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, RepoFileError) for r in results)
    assert len(github_repo.requests) == 1
    github_repo.status = None
    assert await fetcher.fetch(gh()) == b"memr=4\n"
    assert len(github_repo.requests) == 2


@pytest.mark.slow
async def test_concurrent_git_fetches_share_one_upstream(git_server):
    options = git(git_server.repo_url(), git_server.commits["launched"])
    await git_fetcher(git_server).fetch(options)
    # one negotiation: the commit, its top tree and its small files
    assert git_server.fetches() == 1
    one = len(git_server.requests)
    git_server.requests.clear()
    fetcher = git_fetcher(git_server)
    results = await asyncio.gather(*(fetcher.fetch(options) for _ in range(100)))
    assert results == [b"memr=4\n"] * 100
    assert len(git_server.requests) == one


@pytest.mark.parametrize(
    "commit, path, message",
    [
        ("big", ".resources", "larger than the 1000 bytes"),
        ("launched", "docs", "not a regular file"),
    ],
    ids=["too-large", "directory"],
)
async def test_git_refusal_cached(git_server, commit, path, message):
    # BinderHub retries a failed launch 4 times; a refusal that follows
    # from the commit itself must not reach the host again.
    fetcher = git_fetcher(git_server, max_bytes=1000)
    options = git(git_server.repo_url(), git_server.commits[commit])
    with pytest.raises(RepoFileError, match=message):
        await fetcher.fetch(options, path)
    seen = len(git_server.requests)
    for _ in range(4):
        with pytest.raises(RepoFileError, match=message):
            await fetcher.fetch(options, path)
    retries = len(git_server.requests) - seen
    assert retries == 0, f"the retries made {retries} requests to the git host"


async def test_api_refusal_cached(github_repo):
    github_repo.add("org/repo", "3" * 40, ".resources", b"# padding\n" * 10_000)
    fetcher = github_fetcher(github_repo, max_bytes=4096)
    for _ in range(3):
        with pytest.raises(RepoFileError, match="larger than the 4096 bytes"):
            await fetcher.fetch(gh(sha="3" * 40))
    requests = len(github_repo.requests)
    assert requests == 1, f"{requests} requests for one refused file"


async def test_git_transient_failure_not_cached(git_server):
    git_server.status = 502
    fetcher = git_fetcher(git_server)
    options = git(git_server.repo_url(), git_server.commits["launched"])
    with pytest.raises(RepoFileError, match="internal error"):
        await fetcher.fetch(options)
    seen = len(git_server.requests)
    git_server.status = None
    assert await fetcher.fetch(options) == b"memr=4\n"
    assert len(git_server.requests) > seen


async def test_timeout_not_cached(silent_server):
    hosts = {"github.com": {"provider": "github", "api_url": silent_server.url}}
    fetcher = RepoFileFetcher(hosts=hosts, timeout=0.3)
    for _ in range(2):
        with pytest.raises(RepoFileError, match="did not answer"):
            await fetcher.fetch(gh())
    assert len(silent_server.connections) == 2


async def test_cache_is_bounded(github_repo):
    shas = [str(i) * 40 for i in range(1, 4)]
    for sha in shas:
        github_repo.add("org/repo", sha, ".resources", sha[:1].encode())
    fetcher = github_fetcher(github_repo, cache_size=2)
    for sha in shas:
        await fetcher.fetch(gh(sha=sha))
    assert len(github_repo.requests) == 3
    assert len(fetcher._cache) == 2
    await fetcher.fetch(gh(sha=shas[2]))  # kept
    assert len(github_repo.requests) == 3
    assert await fetcher.fetch(gh(sha=shas[0])) == b"1"  # evicted: asked again
    assert len(github_repo.requests) == 4


# --- the hub's own HTTP client ----------------------------------------------------


async def _wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


async def test_hanging_host_leaves_the_hubs_http_client_free(
    silent_server, quick_server
):
    # AsyncHTTPClient() is one client per event loop for the whole hub (its
    # proxy API calls too), with max_clients slots; repo-file fetches must
    # not take them.
    hosts = {"github.com": {"provider": "github", "api_url": silent_server.url}}
    fetcher = RepoFileFetcher(hosts=hosts, timeout=3)
    slots = getattr(AsyncHTTPClient(), "max_clients", 10)
    shas = [f"{i:040x}" for i in range(slots + 3)]
    hanging = [asyncio.ensure_future(fetcher.fetch(gh(sha=sha))) for sha in shas]
    try:
        await _wait_for(lambda: len(silent_server.connections) >= slots)
        try:
            response = await asyncio.wait_for(AsyncHTTPClient().fetch(quick_server), 2)
        except asyncio.TimeoutError:
            pytest.fail(
                "the hub's shared AsyncHTTPClient waited on a hanging repo host"
            )
        assert response.body == b"ok"
        # the fetcher's own limit: the rest wait in its queue, not the hub's
        assert len(silent_server.connections) == fetcher.max_connections
    finally:
        results = await asyncio.gather(*hanging, return_exceptions=True)
        fetcher.close()
    assert all(isinstance(r, RepoFileError) for r in results)


async def test_own_http_client_per_fetcher():
    fetcher = RepoFileFetcher(max_connections=3)
    client = fetcher.http_client()
    assert client is fetcher.http_client() and client is not AsyncHTTPClient()
    assert client.max_clients == 3
    fetcher.close()
    assert fetcher.http_client() is not client
    fetcher.close()


# --- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    "hosts, message",
    [
        ({"github.com": {"provider": "bitbucket"}}, "['provider'] must be one of"),
        (
            {"github.com": {"provider": "github", "token": "x"}},
            "unknown keys ['token']",
        ),
        ({"GitHub.com": {"provider": "github"}}, "must be a lower-case host"),
        (
            {"github.com": {"provider": "github", "api_url": "ftp://x"}},
            "must be an http(s) URL",
        ),
    ],
)
def test_hosts_validation(hosts, message):
    with pytest.raises(Exception) as info:
        RepoFileFetcher(hosts=hosts)
    assert message in str(info.value)
    assert "c.RepoFileFetcher.hosts" in str(info.value)


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "", "."])
async def test_path_must_be_relative(path):
    with pytest.raises(ValueError, match="must be relative"):
        await RepoFileFetcher().fetch(gh(), path)
