"""HubextSpawner end to end: a real hub, KubeSpawner, proxy and API server.

Launches are made exactly as BinderHub makes them (POST with its
`user_options`, then the progress stream), for a repository served by the
loopback GitHub API stand-in.
"""

import asyncio
import base64
import json

import kubernetes_validate
import pytest
from kubernetes_asyncio import client
from tornado.httpclient import AsyncHTTPClient

from hubext import known, names, sshkeys
from hubext.resources import ResourceFileError, ResourcePolicy, parse_resources
from tests.fixtures.hubext_hub import HEAD_SHA, POLICY, REPO, SHA
from tests.helpers.launch import (
    api_requests,
    binder_user_options,
    launch,
    requests_between,
    server_name,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.hub, pytest.mark.slow]


@pytest.fixture
def core(kube_api):
    return client.CoreV1Api(kube_api)


async def _pods(core, namespace, user=None):
    pods = (await core.list_namespaced_pod(namespace)).items
    if user is None:
        return pods
    return [
        p
        for p in pods
        if p.metadata.annotations.get("hub.jupyter.org/username") == user
    ]


async def _launch_ok(hub, user, options=None):
    name = server_name(REPO)
    event = await launch(hub, user, name, options or binder_user_options(REPO, SHA))
    assert event.get("ready"), f"{event}\n{hub.log_text()[-4000:]}"
    return name


def _container(pod):
    return next(c for c in pod.spec.containers if c.name == "notebook")


async def test_binderhub_launch_builds_the_institutional_pod(
    hubext_hub, core, kube_api, k8s_namespace, forge
):
    hub = await hubext_hub()
    await hub.api("POST", "/users/alice")
    name = await _launch_ok(hub, "alice")

    [pod] = await _pods(core, k8s_namespace)
    notebook = _container(pod)
    # .resources at the launched commit, not at HEAD (which asks for gpu=2)
    # an extended resource's request always equals its limit
    assert notebook.resources.requests == {
        "cpu": "2",
        "memory": str(4 * 1024**3),
        "nvidia.com/gpu": "1",
    }
    assert notebook.resources.limits == {
        "cpu": "4",
        "memory": str(8 * 1024**3),
        "nvidia.com/gpu": "1",
    }
    assert any(f"ref={SHA}" in uri for _, uri, _ in forge.requests)
    assert not any(HEAD_SHA in uri for _, uri, _ in forge.requests)

    # the user's NFS claim at /home/alice-nfs-pvc, and the SSH identity
    volumes = {v.name: v for v in pod.spec.volumes}
    mounts = {m.mount_path: m.name for m in notebook.volume_mounts}
    claim_volume = volumes[mounts["/home/alice-nfs-pvc"]]
    assert claim_volume.persistent_volume_claim.claim_name == "alice-nfs-pvc"
    ssh_volume = volumes[mounts["/home/jovyan/.ssh"]]
    assert ssh_volume.empty_dir.medium == "Memory"
    # the key files mounted into ~/.ssh from the Secret: no container of ours
    assert pod.spec.init_containers is None  # this hub's config sets none
    assert notebook.image == binder_user_options(REPO, SHA)["image"]
    key_mounts = {
        m.mount_path: (m.sub_path, m.read_only)
        for m in notebook.volume_mounts
        if m.sub_path
    }
    assert key_mounts == {
        "/home/jovyan/.ssh/ssh.priv": ("ssh.priv", True),
        "/home/jovyan/.ssh/ssh.pub": ("ssh.pub", True),
    }
    key_volume = volumes[mounts["/home/jovyan/.ssh/ssh.priv"]]
    assert key_volume.secret.secret_name == "alice-ssh-key"
    assert {i.key: i.mode for i in key_volume.secret.items} == {
        "ssh.priv": 0o440,
        "ssh.pub": 0o444,
    }
    secret_volumes = [v.secret.secret_name for v in pod.spec.volumes if v.secret]
    assert secret_volumes == ["alice-ssh-key"]

    # uid 1000 with a matching fsGroup, the Binder image contract
    assert pod.spec.security_context.fs_group == 1000
    assert notebook.security_context.run_as_user == 1000

    # what the control panel shows
    assert pod.metadata.labels["hubext/commit"] == SHA
    assert pod.metadata.annotations["hubext/repo-url"] == f"https://github.com/{REPO}"
    assert pod.metadata.annotations["hubext/resources"] == (
        '{"cpul": 4.0, "cpur": 2.0, "gpu": 1, "meml": 8.0, "memr": 4.0}'
    )
    assert pod.spec.image_pull_secrets is None or pod.spec.image_pull_secrets

    # the manifest as stored passes the Kubernetes schemas, strictly
    manifest = kube_api.sanitize_for_serialization(pod)
    manifest.update(apiVersion="v1", kind="Pod")
    manifest.pop("status")
    manifest["metadata"].pop("managedFields", None)
    kubernetes_validate.validate(manifest, "1.35.0", strict=True)

    # the BinderHub token-less, authenticated route reaches the server
    resp = await AsyncHTTPClient().fetch(
        f"{hub.url}/user/alice/{name}/api/status",
        headers={"Authorization": f"token {hub.admin_token}"},
        raise_error=False,
    )
    assert resp.code == 200


async def test_servers_of_a_user_share_claim_and_key_other_users_do_not(
    hubext_hub, core, k8s_namespace
):
    hub = await hubext_hub()
    users = ["alice", "a.b", "a-b"]
    for user in users:
        await hub.api("POST", f"/users/{user}")
    await _launch_ok(hub, "alice")
    await _launch_ok(hub, "alice")
    await _launch_ok(hub, "a.b")
    await _launch_ok(hub, "a-b")

    claims = {}
    keys = {}
    for pod in await _pods(core, k8s_namespace):
        user = pod.metadata.annotations["hub.jupyter.org/username"]
        claim = {
            v.persistent_volume_claim.claim_name
            for v in pod.spec.volumes
            if v.persistent_volume_claim
        }
        secret = {v.secret.secret_name for v in pod.spec.volumes if v.secret}
        claims.setdefault(user, set()).update(claim)
        keys.setdefault(user, set()).update(secret)
    # one claim and one key per user, the same in both of alice's servers
    assert {u: len(c) for u, c in claims.items()} == {u: 1 for u in users}
    assert {u: len(k) for u, k in keys.items()} == {u: 1 for u in users}
    # and never another user's
    all_claims = [next(iter(c)) for c in claims.values()]
    all_keys = [next(iter(k)) for k in keys.values()]
    assert len(set(all_claims)) == len(users)
    assert len(set(all_keys)) == len(users)
    assert claims["a-b"] == {"a-b-nfs-pvc"}
    assert claims["a.b"] == {names.pvc_name("a.b")} != {"a-b-nfs-pvc"}

    pvcs = (await core.list_namespaced_persistent_volume_claim(k8s_namespace)).items
    assert sorted(p.metadata.name for p in pvcs) == sorted(all_claims)
    for pvc in pvcs:
        assert pvc.spec.access_modes == ["ReadWriteMany"]
        assert pvc.spec.storage_class_name == "nfs"


BAD_FILES = [
    b"memr=4G\n",
    b"gpu=1\nmemory=4\n",
    b"cpur=2\ncpur=3\n",
    b"cpul=lots\n",
    b"memr=nan\n",
    b"meml=-1\n",
    b"cpur=6\ncpul=4\n",
    b"memr=20\n",
    b"gpu=3\n",
    b"\xff\xfe\x00binary",
    b"# " + b"x" * 5000 + b"\n",
    b"cpur=0\n",  # with no request Kubernetes would reserve the limit
    b"memr=0\n",
]


@pytest.mark.hub_version
async def test_bad_resources_files_reach_the_launch_page(hubext_hub, core, forge):
    hub = await hubext_hub(limit=0)
    await hub.api("POST", "/users/carol")
    policy = ResourcePolicy.from_dict(POLICY)
    for i, data in enumerate(BAD_FILES):
        sha = f"{i:040x}"
        forge.add(REPO, sha, ".resources", data)
        with pytest.raises(ResourceFileError) as parsed:
            parse_resources(data, policy)
        name = server_name(REPO)
        event = await launch(hub, "carol", name, binder_user_options(REPO, sha))
        assert event.get("failed"), event
        assert event["message"] == f"Spawn failed: {parsed.value.message}"
    # the hub is still serving, and a good file still launches
    await _launch_ok(hub, "carol")


async def test_smallest_requests_reach_the_pod(hubext_hub, core, forge, k8s_namespace):
    """The smallest request a file can ask for is a real one on the pod the
    API server holds: never missing, so never defaulted to the limit."""
    sha = "c" * 40
    forge.add(REPO, sha, ".resources", b"cpur=0.001\nmemr=0.0009765625\n")
    hub = await hubext_hub()
    await hub.api("POST", "/users/dana")
    await _launch_ok(hub, "dana", binder_user_options(REPO, sha))
    [pod] = await _pods(core, k8s_namespace, "dana")
    resources = _container(pod).resources
    assert resources.requests == {"cpu": "1m", "memory": str(1024**2)}
    assert resources.limits == {"cpu": "8", "memory": str(16 * 1024**3)}


async def test_a_sha256_commit_launches(hubext_hub, core, forge, k8s_namespace):
    """A SHA-256 repository's commit (64 characters) is longer than a label
    value may be: the pod carries its first 63, and the record all of it."""
    sha = "5e" * 32
    forge.add(REPO, sha, ".resources", b"cpul=2\n")
    hub = await hubext_hub()
    await hub.api("POST", "/users/erin")
    name = await _launch_ok(hub, "erin", binder_user_options(REPO, sha))
    [pod] = await _pods(core, k8s_namespace, "erin")
    assert pod.metadata.labels["hubext/commit"] == sha[:63]
    assert _container(pod).resources.limits["cpu"] == "2"
    code, user = await hub.api("GET", "/users/erin")
    assert code == 200 and name in user["servers"]
    assert any(f"ref={sha}" in uri for _, uri, _ in forge.requests)


async def test_the_sites_provider_prefixes_and_fallback_reach_the_launch(
    hubext_hub, core, forge, k8s_namespace
):
    """An extra BinderHub prefix the site maps to GitHub reads `.resources`;
    with `on_error = "defaults"`, a launch from a provider without commits
    (Zenodo) starts with the site's defaults instead of being refused."""
    hub = await hubext_hub(
        hub_config='c.RepoFileFetcher.provider_prefixes = {"gh": "github", '
        '"ghx": "github"}\nc.RepoFileFetcher.on_error = "defaults"\n'
    )
    await hub.api("POST", "/users/finn")
    await _launch_ok(hub, "finn", binder_user_options(REPO, SHA, prefix="ghx"))
    [pod] = await _pods(core, k8s_namespace, "finn")
    assert _container(pod).resources.limits["cpu"] == "4"  # RESOURCES at SHA
    zenodo = binder_user_options(REPO, SHA, prefix="zenodo")
    zenodo["binder_persistent_request"] = "v2/zenodo/10.5281/zenodo.3242074/"
    await _launch_ok(hub, "finn", zenodo)
    pods = await _pods(core, k8s_namespace, "finn")
    limits = sorted(_container(p).resources.limits["cpu"] for p in pods)
    assert limits == ["4", "8"]  # the second: the site's default limit


@pytest.mark.hub_version
async def test_unreachable_or_disallowed_repo_host_is_explained(hubext_hub, forge):
    hub = await hubext_hub()
    await hub.api("POST", "/users/dave")
    options = binder_user_options("org/x", SHA, host="gitlab.example.org", prefix="gl")
    event = await launch(hub, "dave", server_name("org/x"), options)
    assert event.get("failed"), event
    assert event["message"].startswith("Spawn failed: ")
    assert "gitlab.example.org" in event["message"]
    assert not any("org/x" in uri for _, uri, _ in forge.requests)


@pytest.mark.hub_version
async def test_image_outside_the_allowed_registry_is_refused(hubext_hub):
    hub = await hubext_hub()
    await hub.api("POST", "/users/erin")
    options = binder_user_options(REPO, SHA)
    options["image"] = f"evil.example.com/miner:{SHA}"
    event = await launch(hub, "erin", server_name(REPO), options)
    assert event.get("failed"), event
    assert "is not one this hub launches" in event["message"]


@pytest.mark.hub_version
async def test_spawner_guard_refuses_a_start_over_the_quota(
    hubext_hub, core, k8s_namespace
):
    # The hub's own creation check is off (limit 0 there), so only the
    # spawner's guard stands between the user and a second project.
    hub = await hubext_hub(
        limit=1, hub_config="c.JupyterHub.named_server_limit_per_user = 0\n"
    )
    await hub.api("POST", "/users/frank")
    await _launch_ok(hub, "frank")
    event = await launch(
        hub, "frank", server_name(REPO), binder_user_options(REPO, SHA)
    )
    assert event.get("failed"), event
    assert event["message"].startswith("Spawn failed: You have 1 of 1 project. ")
    assert len(await _pods(core, k8s_namespace, "frank")) == 1


@pytest.mark.hub_version
async def test_stop_and_delete_leave_claim_and_key(hubext_hub, core, k8s_namespace):
    hub = await hubext_hub()
    await hub.api("POST", "/users/grace")
    name = await _launch_ok(hub, "grace")
    code, _ = await hub.api("DELETE", f"/users/grace/servers/{name}")
    assert code in (202, 204)

    async def stopped():
        return not await _pods(core, k8s_namespace, "grace")

    await wait_for(stopped, 60, "pod removed")
    # the stopped project keeps what the control panel shows about it
    code, model = await hub.api("GET", "/users/grace?include_stopped_servers=1")
    record = model["servers"][name]["state"]["hubext"]
    assert record["commit"] == SHA
    assert record["repo_url"] == f"https://github.com/{REPO}"
    assert record["resources"]["meml"] == 8
    assert record["ssh_public_key"].startswith("ssh-ed25519 ")
    code, _ = await hub.api(
        "DELETE", f"/users/grace/servers/{name}", body={"remove": True}
    )
    assert code in (202, 204)
    code, user = await hub.api("GET", "/users/grace?include_stopped_servers=1")
    assert name not in user["servers"]
    await core.read_namespaced_persistent_volume_claim("grace-nfs-pvc", k8s_namespace)
    await core.read_namespaced_secret("grace-ssh-key", k8s_namespace)


@pytest.mark.hub_version
async def test_private_key_stays_out_of_logs_database_and_api(
    hubext_hub, core, k8s_namespace
):
    hub = await hubext_hub()
    await hub.api("POST", "/users/heidi")
    name = await _launch_ok(hub, "heidi")
    secret = await core.read_namespaced_secret("heidi-ssh-key", k8s_namespace)
    private = base64.b64decode(secret.data["ssh.priv"]).decode()
    public = base64.b64decode(secret.data["ssh.pub"]).decode()
    assert "OPENSSH PRIVATE KEY" in private and public.startswith("ssh-ed25519 ")
    body = private.split("-----")[2].strip()
    lines = [line for line in body.splitlines() if len(line) > 20]
    assert lines
    code, model = await hub.api("GET", "/users/heidi?include_stopped_servers=1")
    assert name in model["servers"]
    api_text = str(model)
    db = (hub.dir / "jupyterhub.sqlite").read_bytes()
    for line in lines:
        assert line not in hub.log_text()
        assert line not in api_text
        assert line.encode() not in db
    assert private not in str(model["servers"][name].get("user_options"))


@pytest.mark.hub_version
async def test_cluster_refusal_reaches_the_launch_page(hubext_hub, core, k8s_namespace):
    # A namespace quota that allows no claims: the admins' to fix, so the
    # user is told what failed and whom to ask, and no pod is made.
    hard = {"persistentvolumeclaims": "0"}
    await core.create_namespaced_resource_quota(
        k8s_namespace, {"metadata": {"name": "no-claims"}, "spec": {"hard": hard}}
    )
    # the status the quota controller would write (no controller runs here)
    await core.patch_namespaced_resource_quota_status(
        "no-claims", k8s_namespace, {"status": {"hard": hard, "used": hard}}
    )
    hub = await hubext_hub()
    await hub.api("POST", "/users/ivan")
    event = await launch(hub, "ivan", server_name(REPO), binder_user_options(REPO, SHA))
    assert event.get("failed"), event
    message = event["message"]
    assert message.startswith(
        "Spawn failed: The cluster refused to create your storage volume (HTTP 403: "
    ), message
    assert message.endswith("Please send this message to the hub admins.")
    assert await _pods(core, k8s_namespace, "ivan") == []


@pytest.mark.hub_version
async def test_failed_setup_step_reaches_the_launch_page(hubext_hub, core):
    # A site's own init container that fails: without hubext the user would
    # wait start_timeout (60 s here) for "did not start in 60 seconds".
    failing = [
        {
            "name": "site-setup",
            "image": "registry.example.edu/site/setup:1",
            "command": ["sh", "-c", "echo 'license server unreachable' >&2; exit 3"],
        }
    ]
    hub = await hubext_hub(hub_config=f"c.KubeSpawner.init_containers = {failing!r}\n")
    await hub.api("POST", "/users/judy")
    loop = asyncio.get_running_loop()
    began = loop.time()
    event = await launch(hub, "judy", server_name(REPO), binder_user_options(REPO, SHA))
    assert event.get("failed"), event
    message = event["message"]
    assert message.startswith(
        "Spawn failed: Your notebook could not start: the setup step 'site-setup' "
        "of your notebook failed (exit code 3): "
    ), message
    assert "license server unreachable" in message
    assert loop.time() - began < 45  # well before start_timeout


@pytest.mark.hub_version
async def test_refused_launches_do_not_use_up_the_quota(hubext_hub, forge):
    # BinderHub names each attempt anew and retries four times: refused
    # attempts that stayed behind would fill a quota of 2 at once.
    hub = await hubext_hub(limit=2)
    await hub.api("POST", "/users/kim")
    bad = f"{99:040x}"
    forge.add(REPO, bad, ".resources", b"memr=4G\n")
    for _ in range(3):
        event = await launch(
            hub, "kim", server_name(REPO), binder_user_options(REPO, bad)
        )
        assert event["message"].startswith(
            "Spawn failed: .resources line 1: memr=4G"
        ), event

        async def no_servers_left():
            code, model = await hub.api("GET", "/users/kim?include_stopped_servers=1")
            return not [name for name in model["servers"] if name]  # "" = default

        await wait_for(no_servers_left, 30, "refused server removed")
    # a project that ran is never removed by this
    name = await _launch_ok(hub, "kim")
    code, _ = await hub.api("DELETE", f"/users/kim/servers/{name}")
    await asyncio.sleep(7)
    code, model = await hub.api("GET", "/users/kim?include_stopped_servers=1")
    assert name in model["servers"]


@pytest.mark.hub_version
async def test_a_retry_never_meets_the_attempt_before_it(hubext_hub, forge):
    """BinderHub retries a refused launch under a new name 4 s after the
    failure (`Launcher.retry_delay`); with one project of two the retry must
    meet the same refusal again, never the quota (the attempt before it is
    gone by then)."""
    hub = await hubext_hub(limit=2)
    await hub.api("POST", "/users/lee")
    await _launch_ok(hub, "lee")
    bad = f"{98:040x}"
    forge.add(REPO, bad, ".resources", b"memr=4G\n")
    for attempt in range(3):
        event = await launch(
            hub, "lee", server_name(REPO), binder_user_options(REPO, bad)
        )
        assert event["message"].startswith(
            "Spawn failed: .resources line 1: memr=4G"
        ), (
            attempt,
            event,
        )
        await asyncio.sleep(4)


async def test_a_known_claim_and_key_cost_no_api_requests(
    hubext_hub, core, kube_api, k8s_namespace
):
    hub = await hubext_hub()
    await hub.api("POST", "/users/bob")
    await _launch_ok(hub, "bob")  # starts the watch
    await hub.api("POST", "/users/alice")
    first = await api_requests(kube_api)
    await _launch_ok(hub, "alice")  # makes the claim and the key
    made = await api_requests(kube_api)
    # a first key: the watch has none, so the create goes first, with no
    # read before it (the one read is the test kubelet's, to mount it)
    assert made.get(("POST", "secrets"), 0) - first.get(("POST", "secrets"), 0) == 1
    assert made.get(("GET", "secrets"), 0) - first.get(("GET", "secrets"), 0) == 1
    await asyncio.sleep(1)  # for the watch to see them
    before = await api_requests(kube_api)
    await _launch_ok(hub, "alice")
    after = await api_requests(kube_api)

    delta = requests_between(before, after)

    # without the watch: a create answered 409 and a read of the claim, and a
    # read of the Secret; with it, only the test kubelet's own read of each
    # (it reads every volume's object once to mount it)
    assert delta("POST", "persistentvolumeclaims") == 0
    assert delta("GET", "persistentvolumeclaims") == 1
    assert delta("POST", "secrets") == 0
    assert delta("GET", "secrets") == 1

    # an admin deletes the key: the watch forgets it, the next launch makes a
    # new one, and the pod mounts the new one
    old = await core.read_namespaced_secret("alice-ssh-key", k8s_namespace)
    await core.delete_namespaced_secret("alice-ssh-key", k8s_namespace)
    await asyncio.sleep(1)
    name = await _launch_ok(hub, "alice")
    new = await core.read_namespaced_secret("alice-ssh-key", k8s_namespace)
    assert new.metadata.uid != old.metadata.uid
    assert new.data["ssh.pub"] != old.data["ssh.pub"]
    code, model = await hub.api("GET", "/users/alice")
    assert code == 200, model
    assert name in model["servers"]


async def test_a_watch_that_ended_is_not_trusted(kube_api, core, k8s_namespace):
    """The hub's watch of claims, run against the API server: trusted while
    it watches, not once its task has ended. A reflector gives up (ends its
    task) after about 50 s of failed reconnects; here the task is ended
    outright. A launch then asks the API server, and starts a new watch."""
    reflector = known.ClaimReflector(namespace=k8s_namespace)
    reflector.api = client.CoreV1Api(kube_api)
    assert not known.watching(reflector)
    await reflector.start()
    await asyncio.wait_for(reflector.first_load_future, 30)
    assert known.watching(reflector)
    reflector.watch_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reflector.watch_task
    assert not known.watching(reflector)


async def test_the_watch_of_key_secrets_never_receives_a_private_key(
    kube_api, k8s_namespace
):
    """The API server answers the watch's list and its events with metadata
    only; the public key comes from the Secret's annotation."""
    core = client.CoreV1Api(kube_api)
    public = await sshkeys.ensure_ssh_secret(core, k8s_namespace, "gil-ssh-key", "gil")
    api = known.SecretMetadataApi(core)
    response = await api.list_namespaced_secret_metadata(
        k8s_namespace, label_selector="app.kubernetes.io/managed-by=hubext"
    )
    listed = json.loads(await response.read())
    assert listed["kind"] == "PartialObjectMetadataList"
    [item] = listed["items"]
    assert set(item) == {"kind", "apiVersion", "metadata"}, item
    stored = await core.read_namespaced_secret("gil-ssh-key", k8s_namespace)
    assert stored.data["ssh.priv"] not in json.dumps(listed)

    reflector = known.KeySecretReflector(namespace=k8s_namespace)
    reflector.api = known.SecretMetadataApi(core)
    await reflector.start()
    try:
        await asyncio.wait_for(reflector.first_load_future, 30)
        assert known.unseen(reflector, k8s_namespace, "hal-ssh-key")
        await sshkeys.ensure_ssh_secret(core, k8s_namespace, "hal-ssh-key", "hal")

        async def seen():
            return not known.unseen(reflector, k8s_namespace, "hal-ssh-key")

        await wait_for(seen, 30, "the watch sees hal's new Secret")
        for key in ("gil", "hal"):
            held = reflector.resources[f"{k8s_namespace}/{key}-ssh-key"]
            assert set(held) == {"metadata"}
        assert (
            known.known_public_key(reflector, k8s_namespace, "gil-ssh-key", "gil")
            == public
        )
        # another user's Secret is never handed out
        assert not known.known_public_key(
            reflector, k8s_namespace, "gil-ssh-key", "hal"
        )
    finally:
        await reflector.stop()
