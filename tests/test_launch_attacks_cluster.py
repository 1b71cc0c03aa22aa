"""Crafted launch bodies against the real hub, KubeSpawner and API server.

A signed-in user needs no BinderHub to launch: `POST /hub/api/users/{me}/
servers/{name}` with any JSON body. Here Mallory does exactly that, with her
own token, after Bob has launched (so Bob's SSH key Secret exists). Every
body is refused with a message naming the key, or neutralised; afterwards
no pod in the namespace references a Secret other than its owner's, no env
var comes from anywhere but a plain value, and the hub keeps only validated
options.
"""

from urllib.parse import urlencode

import pytest
from kubernetes_asyncio import client

from hubext import names
from tests.fixtures.hubext_hub import REPO, SHA
from tests.helpers.launch import (
    binder_user_options,
    launch,
    progress,
    server_name,
    wait_for,
)
from tests.helpers.session import login, page

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.hub,
    pytest.mark.hub_version,
    pytest.mark.slow,
]

BOB_KEY = {"valueFrom": {"secretKeyRef": {"name": "bob-ssh-key", "key": "ssh.priv"}}}
HUB_SECRET = {
    "valueFrom": {
        "secretKeyRef": {"name": "hub", "key": "hub.config.JupyterHub.cookie_secret"}
    }
}


def good(**changes):
    """BinderHub's body for REPO@SHA, with some keys changed."""
    options = binder_user_options(REPO, SHA)
    options.update(changes)
    return options


# (what, body, expected): expected is ("refused", text in the message) or
# ("ready", {env var: value the pod must have}) for a neutralised body.
ATTACKS = [
    (
        "the reported body",
        {
            "image": "quay.io/jupyter/base-notebook:latest",
            "binder_request": BOB_KEY,
            "binder_ref_url": HUB_SECRET,
            "binder_launch_host": {"name": "LD_PRELOAD", "value": "/evil.so"},
            "repo_url": "A" * 200_000,
        },
        ("refused", "The launch option 'binder_request' must be a string"),
    ),
    (
        "Secret reference in a BinderHub body",
        good(binder_ref_url=HUB_SECRET),
        ("refused", "'binder_ref_url' must be a string, not an object"),
    ),
    (
        "env var of the user's choosing",
        good(binder_launch_host={"name": "LD_PRELOAD", "value": "/evil.so"}),
        ("refused", "'binder_launch_host' must be a string"),
    ),
    ("list as image", good(image=["quay.io/evil/x"]), ("refused", "not a list")),
    (
        "200,000 characters",
        good(repo_url="https://github.com/" + "A" * 200_000),
        ("refused", "'repo_url' is 200019 characters long; at most 2048"),
    ),
    (
        "image outside the prefix",
        good(image=f"registry.example.edu/binder-evil/x:{SHA}"),
        ("refused", "is not one this hub launches"),
    ),
    (
        "image without its launch",
        {"image": f"registry.example.edu/binder/x:{SHA}"},
        ("refused", "'binder_persistent_request' is missing"),
    ),
    (
        "template in a label value",
        good(binder_persistent_request="v2/gh/{username}/{servername}/" + SHA),
        ("refused", "'binder_persistent_request' is not a BinderHub request"),
    ),
    (
        "header injection",
        good(binder_ref_url="https://github.com/x\r\nX-Evil: 1"),
        ("refused", "'binder_ref_url' contains spaces, quotes"),
    ),
    (
        "nested unknown keys and another user's names",
        good(
            user="bob",
            server_name="bob-project",
            namespace="kube-system",
            env={"BOB": BOB_KEY},
            volumes=[{"name": "k", "secret": {"secretName": "bob-ssh-key"}}],
            profile="gpu-large",
        ),
        (
            "ready",
            {
                "BINDER_REPO_URL": f"https://github.com/{REPO}",
                "BINDER_PERSISTENT_REQUEST": f"v2/gh/{REPO}/{SHA}",
            },
        ),
    ),
    (
        "unknown keys only (a REST launch)",
        {"extra_env": BOB_KEY, "token": "abc", "volume_mounts": [{"mountPath": "/"}]},
        ("ready", {}),
    ),
]


def _secret_refs(pod) -> set[str]:
    """Every Secret a pod's spec refers to, however it refers to it."""
    refs = set()
    for volume in pod.spec.volumes or []:
        if volume.secret:
            refs.add(volume.secret.secret_name)
        for source in (volume.projected.sources or []) if volume.projected else []:
            if source.secret:
                refs.add(source.secret.name)
    for container in (pod.spec.containers or []) + (pod.spec.init_containers or []):
        for env in container.env or []:
            if env.value_from and env.value_from.secret_key_ref:
                refs.add(env.value_from.secret_key_ref.name)
        for source in container.env_from or []:
            if source.secret_ref:
                refs.add(source.secret_ref.name)
    return refs


def _env(pod) -> dict:
    notebook = next(c for c in pod.spec.containers if c.name == "notebook")
    return {e.name: e for e in notebook.env or []}


async def test_crafted_launch_bodies_are_refused_or_neutralised(
    hubext_hub, kube_api, k8s_namespace
):
    hub = await hubext_hub(limit=20)
    for user in ("bob", "mallory"):
        await hub.api("POST", f"/users/{user}")
    event = await launch(hub, "bob", server_name(REPO), good())
    assert event.get("ready"), event
    code, body = await hub.api("POST", "/users/mallory/tokens", body={})
    assert code == 201, body
    mallory = body["token"]

    # another user's server is the hub's to refuse, before any spawner runs
    code, _ = await hub.api(
        "POST", "/users/bob/servers/stolen", body=good(), token=mallory
    )
    assert code in (403, 404)  # the hub does not even say whether Bob exists
    _, bob = await hub.api("GET", "/users/bob")
    assert "stolen" not in bob["servers"]

    rows, wrong = [], []
    for what, body, (outcome, expected) in ATTACKS:
        name = server_name(REPO)
        path = f"/users/mallory/servers/{name}"
        code, answer = await hub.api("POST", path, body=body, token=mallory)
        event = (
            await progress(hub, "mallory", name)
            if code in (201, 202)
            else {"failed": True, "message": f"HTTP {code}: {answer}"}
        )
        message = event.get("message", "")
        rows.append((what, "ready" if event.get("ready") else message[:110]))
        if outcome == "refused":
            if not event.get("failed") or expected not in message:
                wrong.append(f"{what}: expected refusal {expected!r}, got {event}")
            continue
        if not event.get("ready"):
            wrong.append(f"{what}: expected a launch, got {event}")
            continue
        pod = await _pod_of(kube_api, k8s_namespace, "mallory", name)
        env = _env(pod)
        for key, value in expected.items():
            if env.get(key) is None or env[key].value != value:
                wrong.append(f"{what}: {key} is {env.get(key)}, not {value!r}")
        if any(k.startswith("BINDER_") for k in env) and not expected:
            wrong.append(f"{what}: a REST launch got BinderHub variables")

    print("\nlaunch body -> what the launch page shows")
    for what, shown in rows:
        print(f"  {what:<46} {shown}")
    assert not wrong, "\n".join(wrong)

    # the whole namespace: each pod refers to its owner's Secret only
    pods = (await client.CoreV1Api(kube_api).list_namespaced_pod(k8s_namespace)).items
    assert {p.metadata.annotations["hub.jupyter.org/username"] for p in pods} == {
        "bob",
        "mallory",
    }
    for pod in pods:
        owner = pod.metadata.annotations["hub.jupyter.org/username"]
        assert _secret_refs(pod) == {names.ssh_secret_name(owner)}, pod.metadata.name
        for env in _env(pod).values():
            assert env.value_from is None, (pod.metadata.name, env.name)
            assert env.value is None or len(env.value) <= 4096, env.name

    # the hub keeps only validated options: nothing refused survives in it
    code, user = await hub.api("GET", "/users/mallory?include_stopped_servers=1")
    # refused BinderHub-shaped attempts may be gone already; REST ones stay
    assert len([n for n in user["servers"] if n]) >= 6, user["servers"].keys()
    for name, server in user["servers"].items():
        kept = server.get("user_options") or {}
        assert set(kept) <= {
            "image",
            "repo_url",
            "token",
            "binder_ref_url",
            "binder_launch_host",
            "binder_request",
            "binder_persistent_request",
            "binder_client_ip",
        }, (name, kept)
        assert all(isinstance(v, str) and len(v) <= 2048 for v in kept.values())
    log = hub.log_text()
    assert "A" * 3000 not in log  # the huge value is never echoed
    assert "ignored 6 unknown launch option(s): 'user', 'server_name'" in log
    assert "allowed_images is empty" not in log


async def _pod_of(kube_api, namespace, user, server):
    pods = (await client.CoreV1Api(kube_api).list_namespaced_pod(namespace)).items
    for pod in pods:
        notes = pod.metadata.annotations
        if (
            notes.get("hub.jupyter.org/username") == user
            and notes.get("hub.jupyter.org/servername") == server
        ):
            return pod
    raise AssertionError(f"no pod for {user}/{server}")


async def test_an_empty_image_list_is_a_choice_the_hub_warns_about(hubext_hub):
    """Any image goes with `allowed_images = []`: the hub says so in its log
    as soon as it makes a spawner, and launches what it was asked."""
    hub = await hubext_hub(hub_config="c.HubextSpawner.allowed_images = []\n")
    await hub.api("POST", "/users/erin")
    options = good(image=f"quay.io/anyone/anything:{SHA}")
    event = await launch(hub, "erin", server_name(REPO), options)
    assert event.get("ready"), event
    assert hub.log_text().count("c.HubextSpawner.allowed_images is empty") == 1


# A link another site can show: a GET of /hub/spawn with launch options in
# its query, in KubeSpawner's profile form and in JupyterHub's `opt-` form.
ATTACKER_IMAGE = f"registry.example.edu/binder/mallory-x:{SHA}"
LINK_QUERIES = {
    "profile form": {
        "profile": "p",
        "profile-option-p--image": ATTACKER_IMAGE,
        "profile-option-p--repo_url": "https://github.com/mallory/x",
        "profile-option-p--binder_persistent_request": f"v2/gh/mallory/x/{SHA}",
    },
    "opt- form": {
        "opt-image": ATTACKER_IMAGE,
        "opt-repo_url": "https://github.com/mallory/x",
        "opt-binder_persistent_request": f"v2/gh/mallory/x/{SHA}",
    },
}


async def test_a_spawn_link_cannot_choose_what_runs(
    hubext_hub, forge, kube_api, k8s_namespace
):
    """Bob follows a link to `/hub/spawn` that names Mallory's image and
    repository (his browser sends his cookie: no XSRF check guards a GET).
    The server starts with the site's defaults: not her image, no BinderHub
    variables, and the hub keeps no options for a later start."""
    hub = await hubext_hub(limit=20)
    forge.add("mallory/x", SHA, ".resources", b"cpul=16\n")  # a launch that works
    await hub.api("POST", "/users/bob")
    cookie = await login(hub, "bob")
    for form, query in LINK_QUERIES.items():
        name = f"link-{form.split()[0].rstrip('-')}"
        path = f"/hub/spawn/bob/{name}?{urlencode(query)}"
        code, _ = await page(hub, path, cookie, follow_redirects=False)
        assert code == 302, (form, code)
        event = await progress(hub, "bob", name)
        assert event.get("ready"), (form, event)
        pod = await _pod_of(kube_api, k8s_namespace, "bob", name)
        notebook = next(c for c in pod.spec.containers if c.name == "notebook")
        assert notebook.image == "quay.io/jupyter/base-notebook:2025-01-01", form
        assert not [k for k in _env(pod) if k.startswith("BINDER_")], form
        _, bob = await hub.api("GET", "/users/bob")
        assert not bob["servers"][name].get("user_options"), (form, bob)
    # a stopped project followed by such a link restarts as itself
    project = server_name(REPO)
    assert (await launch(hub, "bob", project, good())).get("ready")
    code, _ = await hub.api("DELETE", f"/users/bob/servers/{project}")
    assert code in (202, 204)
    await wait_for_stopped(hub, "bob", project)
    query = urlencode(LINK_QUERIES["profile form"])
    code, _ = await page(hub, f"/hub/spawn/bob/{project}?{query}", cookie, False)
    assert code == 302
    assert (await progress(hub, "bob", project)).get("ready")
    pod = await _pod_of(kube_api, k8s_namespace, "bob", project)
    notebook = next(c for c in pod.spec.containers if c.name == "notebook")
    assert notebook.image == good()["image"]
    assert _env(pod)["BINDER_REPO_URL"].value == f"https://github.com/{REPO}"
    assert hub.log_text().count("from a /hub/spawn link: its query") == 3


async def wait_for_stopped(hub, user, name):
    async def stopped():
        _, model = await hub.api("GET", f"/users/{user}?include_stopped_servers=1")
        server = model["servers"].get(name) or {}
        return not server.get("ready") and not server.get("pending")

    await wait_for(stopped, 60, f"{user}/{name} stopped")
