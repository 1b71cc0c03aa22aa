"""What the user finds inside a launched notebook: SSH key and shared storage.

Launches go through a real hub running HubextSpawner, exactly as BinderHub
makes them; the checks run inside the notebook's own mount namespace, as
its user, through the test kubelet's `exec` (like `kubectl exec`). The key
files are the Secret's own, mounted with `subPath` into the writable `~/.ssh`,
and OpenSSH's `ssh-keygen` reads them there as uid 1000.

The first tests check the test kubelet's volume and namespace parts on
their own (real files and a real mount namespace, no cluster), so that a
failure in the end-to-end tests below can be told apart from one in them.
"""

import base64
import os
import secrets
import shlex
import shutil
import stat

import pytest
from kubernetes_asyncio import client

from devstack import containers, mountns, volumes
from hubext import sshkeys
from tests.fixtures.hubext_hub import REPO, SHA
from tests.helpers.launch import binder_user_options, launch, server_name, wait_for
from tests.helpers.views import run_in_view


def end_to_end(test):
    """Marks of a test through a real hub and the cluster."""
    return pytest.mark.cluster(pytest.mark.hub(pytest.mark.slow(test)))


SSH_DIR = sshkeys.DEFAULT_SSH_DIR


# -- the kubelet's parts on their own (no cluster) -------------------------

POD = {
    "metadata": {"name": "p1", "namespace": "ns1", "uid": "u1"},
    "spec": {
        "securityContext": {"fsGroup": 1000, "supplementalGroups": [100]},
        "volumes": [
            {"name": "key", "secret": {"secretName": "k", "defaultMode": 0o400}},
            {
                "name": "picked",
                "secret": {
                    "secretName": "k",
                    "items": [{"key": "b", "path": "sub/b.txt", "mode": 0o600}],
                },
            },
            {"name": "scratch", "emptyDir": {"medium": "Memory"}},
            {"name": "home", "persistentVolumeClaim": {"claimName": "c1"}},
            {"name": "host", "hostPath": {"path": "/etc"}},
        ],
        "containers": [
            {
                "name": "nb",
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                "volumeMounts": [
                    {"name": "key", "mountPath": "/etc/hubext/ssh", "readOnly": True},
                    {"name": "scratch", "mountPath": "/home/jovyan/.ssh"},
                    {"name": "home", "mountPath": "/home/u-nfs-pvc"},
                    {"name": "host", "mountPath": "/mnt/host"},
                ],
            }
        ],
    },
}
SOURCES = {("secret", "k"): {"a": b"A", "b": b"B"}, ("pvc", "c1"): True}


def test_identity_takes_the_container_over_the_pod_and_adds_fs_group():
    container = {"securityContext": {"runAsUser": 1000, "runAsGroup": 1000}}
    assert mountns.identity(POD, container) == mountns.Identity(1000, 1000, (1000, 100))
    assert mountns.identity({"spec": {}}, {}).is_root
    no_group = mountns.identity({"spec": {"securityContext": {"runAsUser": 5}}}, {})
    assert (no_group.uid, no_group.gid, no_group.groups) == (5, 0, ())


def test_setup_script_covers_missing_parents_without_touching_the_host():
    host = {"/", "/home", "/etc", "/tmp", "/tmp/pod", "/tmp/pod/v", "/mnt"}
    mounts = [
        mountns.Mount("/tmp/pod/v", "/home/jovyan/.ssh"),
        mountns.Mount("/tmp/pod/v", "/etc/hubext/ssh", read_only=True),
        mountns.Mount("/tmp/pod/home", "/home/jovyan"),
        mountns.Mount("/tmp/pod/v", "/home/u-nfs-pvc"),
        mountns.Mount("/tmp/pod/v", "/opt/x"),  # only / exists above it
        mountns.Mount("/tmp/pod/v", "/tmp/pod/inner"),  # would hide the volumes
    ]
    script = mountns.setup_script(mounts, "/tmp/pod/scratch", host.__contains__)
    lines = script.splitlines()
    # one table of mounts, made by one program: `mount -a`
    assert [line for line in lines if line.startswith("mount ")] == [
        "mount -a --fstab /tmp/pod/scratch/fstab-dirs"
    ]
    table = [
        line.split()
        for line in shlex.split(next(x for x in lines if x.startswith("printf")))[2:-2]
    ]
    targets = [row[1] for row in table]
    assert table[0][:4] == ["hubext-home", "/home", "tmpfs", "mode=755"]
    assert targets.count("/home") == 1
    assert table[targets.index("/etc")] == [
        "overlay",
        "/etc",
        "overlay",
        "lowerdir=/etc,upperdir=/tmp/pod/scratch/overlay0/upper,"
        "workdir=/tmp/pod/scratch/overlay0/work",
        "0",
        "0",
    ]
    assert targets.index("/home/jovyan") < targets.index("/home/jovyan/.ssh")
    assert targets.index("/etc") < targets.index("/etc/hubext/ssh")
    assert "/opt/x" not in targets and "/tmp/pod/inner" not in targets
    assert ["/tmp/pod/v", "/etc/hubext/ssh", "none", "bind,X-mount.mkdir,ro"] == (
        table[targets.index("/etc/hubext/ssh")][:4]
    )
    assert lines[-1] == 'exec "$@"'


def test_setup_script_mounts_files_after_every_directory_and_escapes_blanks():
    mounts = [
        mountns.Mount("/v/key", "/home/jovyan/.ssh/ssh.priv", True, is_file=True),
        mountns.Mount("/v/dir with space", "/home/jovyan/.ssh"),
        mountns.Mount("/v/home", "/home/jovyan"),
    ]
    script = mountns.setup_script(mounts, "/s", {"/", "/home"}.__contains__)
    lines = script.splitlines()
    assert [line for line in lines if line.startswith("mount ")] == [
        "mount -a --fstab /s/fstab-dirs",
        "mount -a --fstab /s/fstab-files",
    ]
    dirs, files = (
        shlex.split(line)[2:-2] for line in lines if line.startswith("printf")
    )
    assert "/v/dir\\040with\\040space /home/jovyan/.ssh none" in " | ".join(dirs)
    touch = lines.index(
        "[ -e /home/jovyan/.ssh/ssh.priv ] || : > /home/jovyan/.ssh/ssh.priv"
    )
    assert lines.index("mount -a --fstab /s/fstab-dirs") < touch
    assert files == ["/v/key /home/jovyan/.ssh/ssh.priv none bind,ro 0 0"]


def test_volumes_are_laid_out_like_the_kubelet_does(tmp_path):
    paths = volumes.prepare(POD, tmp_path / "pod", tmp_path / "claims", SOURCES)
    key = paths["key"]
    assert os.readlink(key / "..data").startswith("..")
    assert os.readlink(key / "a") == "..data/a"
    info = os.stat(key / "a")  # 0400 made group-readable for the fsGroup
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o440, 0, 1000)
    picked = paths["picked"]
    assert sorted(os.listdir(picked / "..data")) == ["sub"]
    assert stat.S_IMODE(os.stat(picked / "sub" / "b.txt").st_mode) == 0o640
    scratch = os.stat(paths["scratch"])
    assert (stat.S_IMODE(scratch.st_mode), scratch.st_gid) == (0o2777, 1000)
    claim = paths["home"]
    assert claim == tmp_path / "claims" / "ns1" / "c1"
    assert stat.S_IMODE(os.stat(claim).st_mode) == 0o2775
    assert paths["host"] is None
    # a second pod mounting the claim gets the same directory, data kept
    (claim / "kept").write_text("x")
    second = dict(POD, metadata={"name": "p2", "namespace": "ns1", "uid": "u2"})
    again = volumes.prepare(second, tmp_path / "pod2", tmp_path / "claims", SOURCES)
    assert (again["home"] / "kept").read_text() == "x"


@pytest.mark.parametrize(
    "sources, message",
    [
        ({("pvc", "c1"): True}, 'secret "k" not found'),
        ({("secret", "k"): {"a": b"A"}, ("pvc", "c1"): True}, "has no key 'b'"),
        ({("secret", "k"): {"b": b"B"}}, 'persistentvolumeclaim "c1" not found'),
    ],
)
def test_a_missing_source_fails_the_mount(tmp_path, sources, message):
    with pytest.raises(volumes.MountError) as err:
        volumes.prepare(POD, tmp_path / "pod", tmp_path / "claims", sources)
    assert message in str(err.value)


async def test_a_container_sees_its_mounts_as_its_user(tmp_path):
    if not containers.namespaces_available():
        raise AssertionError("the test kubelet needs root with unshare and setpriv")
    paths = volumes.prepare(POD, tmp_path / "pod", tmp_path / "claims", SOURCES)
    view = containers.view(POD, POD["spec"]["containers"][0], tmp_path / "pod", paths)
    script = (
        "id -u; id -G; echo $HOME; cat /etc/hubext/ssh/a; echo;"
        "touch /etc/hubext/ssh/new 2>/dev/null && echo rw || echo ro;"
        "touch ~/.ssh/f /home/u-nfs-pvc/f && stat -c '%u %g' /home/u-nfs-pvc/f;"
        "ls /mnt/host 2>/dev/null | wc -l; ls /home"
    )
    code, out = await run_in_view(view, script, tmp_path)
    assert code == 0, out
    assert out[:5] == ["1000", "1000 100", "/home/jovyan", "A", "ro"]
    assert out[5] == "1000 1000"  # the user's file on the shared claim
    assert out[6] == "0"  # hostPath is not supported: nothing mounted
    assert sorted(out[7:]) == ["jovyan", "u-nfs-pvc"]  # not the host's /home
    assert (paths["home"] / "f").exists()
    assert not os.path.exists("/home/u-nfs-pvc") and not os.path.exists("/etc/hubext")


# -- inside launched notebooks ---------------------------------------------


@pytest.fixture
def kubelet(test_kubelet):
    if test_kubelet is None:
        pytest.skip("exec needs the local test kubelet; other clusters use kubectl")
    return test_kubelet


@pytest.fixture
def core(kube_api):
    return client.CoreV1Api(kube_api)


async def _start(hub, core, namespace, user) -> str:
    """Launch one project of `user`; the name of its pod."""
    name = server_name(REPO)
    event = await launch(hub, user, name, binder_user_options(REPO, SHA))
    assert event.get("ready"), f"{event}\n{hub.log_text()[-4000:]}"
    code, model = await hub.api("GET", f"/users/{user}")
    return model["servers"][name]["state"]["pod_name"], name


async def _sh(kubelet, namespace, pod, script) -> str:
    """Run a shell snippet in the pod; its stdout, after checking it succeeded."""
    rc, out, err = await kubelet.exec(namespace, pod, ["sh", "-c", script])
    assert rc == 0, f"{script!r} in {pod}: rc={rc}\n{out}\n{err}"
    return out


@end_to_end
async def test_ssh_key_is_the_secrets_file_usable_by_ssh_and_ssh_dir_is_writable(
    hubext_hub, core, k8s_namespace, kubelet
):
    if not shutil.which("ssh-keygen"):
        pytest.fail("ssh-keygen is not installed: install openssh-client")
    hub = await hubext_hub()
    await hub.api("POST", "/users/alice")
    pod, _ = await _start(hub, core, k8s_namespace, "alice")
    ns = k8s_namespace

    assert (await _sh(kubelet, ns, pod, "id -u")).strip() == "1000"
    assert (await _sh(kubelet, ns, pod, "echo ~")).strip() == "/home/jovyan"
    # the Secret's own file: owned by root, group the fsGroup, 0440
    mode = await _sh(kubelet, ns, pod, "stat -L -c '%a %u %g' ~/.ssh/ssh.priv")
    assert mode.strip() == "440 0 1000"
    mode = await _sh(kubelet, ns, pod, "stat -L -c '%a %u %g' ~/.ssh/ssh.pub")
    assert mode.strip() == "444 0 1000"
    # OpenSSH checks a key's mode only when the user owns it: accepted
    rc, derived, err = await kubelet.exec(
        ns, pod, ["ssh-keygen", "-y", "-f", f"{SSH_DIR}/ssh.priv"]
    )
    assert rc == 0, err
    public = await _sh(kubelet, ns, pod, "cat ~/.ssh/ssh.pub")
    assert derived.split()[:2] == public.split()[:2]
    assert public.startswith("ssh-ed25519 ")
    # the same key as the user's Secret
    secret = await core.read_namespaced_secret("alice-ssh-key", ns)
    assert secret.data[sshkeys.PUBLIC_KEY] == base64.b64encode(public.encode()).decode()
    # ~/.ssh stays writable; the key files are mount points the user cannot
    # remove, replace or chmod
    await _sh(kubelet, ns, pod, "echo 'host key' >> ~/.ssh/known_hosts")
    owner = await _sh(kubelet, ns, pod, "stat -c '%u %a' ~/.ssh/known_hosts")
    assert owner.split()[0] == "1000"
    rc, _, err = await kubelet.exec(ns, pod, ["rm", "-f", f"{SSH_DIR}/ssh.priv"])
    assert rc != 0 and "Device or resource busy" in err, err
    rc, _, _ = await kubelet.exec(ns, pod, ["chmod", "600", f"{SSH_DIR}/ssh.priv"])
    assert rc != 0
    rc, _, _ = await kubelet.exec(ns, pod, ["sh", "-c", f"echo x > {SSH_DIR}/ssh.pub"])
    assert rc != 0
    assert (await _sh(kubelet, ns, pod, "cat ~/.ssh/ssh.pub")) == public
    # only the two files: the Secret volume's directory (`..data`) is not there
    listing = await _sh(kubelet, ns, pod, "ls -A ~/.ssh")
    assert sorted(listing.split()) == ["known_hosts", "ssh.priv", "ssh.pub"]


@end_to_end
async def test_nfs_volume_is_shared_by_a_users_servers_only(
    hubext_hub, core, k8s_namespace, kubelet
):
    hub = await hubext_hub()
    for user in ("alice", "bob"):
        await hub.api("POST", f"/users/{user}")
    ns = k8s_namespace
    first, name1 = await _start(hub, core, ns, "alice")
    second, name2 = await _start(hub, core, ns, "alice")
    other, _ = await _start(hub, core, ns, "bob")
    marker = secrets.token_hex(8)
    key_before = await _sh(kubelet, ns, first, "cat ~/.ssh/ssh.pub")

    await _sh(kubelet, ns, first, f"echo {marker} > /home/alice-nfs-pvc/notes.txt")
    assert (await _sh(kubelet, ns, second, "cat /home/alice-nfs-pvc/notes.txt")) == (
        marker + "\n"
    )
    owner = await _sh(kubelet, ns, second, "stat -c '%u' /home/alice-nfs-pvc/notes.txt")
    assert owner.strip() == "1000"
    assert await _sh(kubelet, ns, second, "cat ~/.ssh/ssh.pub") == key_before

    # bob has his own volume, and alice's is nowhere in his server
    await _sh(kubelet, ns, other, "touch /home/bob-nfs-pvc/mine")
    rc, _, _ = await kubelet.exec(ns, other, ["ls", "/home/alice-nfs-pvc"])
    assert rc != 0
    # where the data could be: /home, and the stand-in node's directory that
    # holds every claim's export (made unlistable to pods; the search fails
    # if that ever changes). The rest of the host holds nothing of the pods.
    found = await _sh(
        kubelet,
        ns,
        other,
        f"grep -rl {marker} /home {kubelet.workdir} 2>/dev/null || true",
    )
    assert found == ""
    assert await _sh(kubelet, ns, other, "cat ~/.ssh/ssh.pub") != key_before

    # stop and delete every one of alice's servers, then launch again
    for name in (name1, name2):
        code, _ = await hub.api("DELETE", f"/users/alice/servers/{name}")
        assert code in (202, 204)

    async def alice_gone():
        pods = (await core.list_namespaced_pod(ns)).items
        return not [p for p in pods if p.metadata.name in (first, second)]

    await wait_for(alice_gone, 60, "alice's pods removed")
    for name in (name1, name2):
        code, _ = await hub.api(
            "DELETE", f"/users/alice/servers/{name}", body={"remove": True}
        )
        assert code in (202, 204)
    third, _ = await _start(hub, core, ns, "alice")
    assert third not in (first, second)
    assert (await _sh(kubelet, ns, third, "cat /home/alice-nfs-pvc/notes.txt")) == (
        marker + "\n"
    )
    assert await _sh(kubelet, ns, third, "cat ~/.ssh/ssh.pub") == key_before
    mode = await _sh(kubelet, ns, third, "stat -L -c '%a %u %g' ~/.ssh/ssh.priv")
    assert mode.strip() == "440 0 1000"


def _pod_with_ssh_parts(name: str, secret_name: str, inits=()) -> dict:
    """A pod carrying hubext's real SSH parts, notebook user 1000."""
    parts = sshkeys.ssh_pod_parts(secret_name)
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"fsGroup": 1000},
            "volumes": parts["volumes"],
            "initContainers": list(inits),
            "containers": [
                {
                    "name": "notebook",
                    "image": "example/never-pulled",
                    "command": ["jupyterhub-singleuser"],
                    "ports": [{"name": "notebook-port", "containerPort": 8888}],
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                    "volumeMounts": parts["volume_mounts"],
                }
            ],
        },
    }


async def _failed(core, namespace, name):
    async def phase():
        pod = await core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Failed", "Running") else None

    return await wait_for(phase, 60, f"pod {name} finished starting")


async def _user_secret(core, namespace, name, drop=()):
    pair = sshkeys.generate_keypair("mallory")
    secret = sshkeys.make_ssh_secret(name, "mallory", pair.private, pair.public)
    for key in drop:
        del secret["data"][key]
    await core.create_namespaced_secret(namespace, secret)


@pytest.mark.cluster
async def test_init_container_failure_fails_the_pod_with_its_output(
    core, k8s_namespace, kubelet
):
    # a site's own setup step, as admins add with KubeSpawner.init_containers
    site_setup = {
        "name": "site-setup",
        "image": "registry.example.edu/site/setup:1",
        "command": [
            "sh",
            "-c",
            'echo "license server unreachable as $(id -u)" >&2; exit 3',
        ],
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
    }
    await _user_secret(core, k8s_namespace, "site-key")
    await core.create_namespaced_pod(
        k8s_namespace, _pod_with_ssh_parts("no-license", "site-key", [site_setup])
    )
    pod = await _failed(core, k8s_namespace, "no-license")
    assert pod.status.phase == "Failed"
    [init] = pod.status.init_container_statuses
    assert init.name == "site-setup"
    assert init.state.terminated.exit_code == 3
    expected = "license server unreachable as 1000"
    assert expected in pod.status.message
    assert expected in init.state.terminated.message
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    # the notebook never started
    assert kubelet.find(k8s_namespace, "no-license").proc is None
    assert pod.status.pod_ip is None


@pytest.mark.cluster
async def test_missing_secret_fails_the_mount(core, k8s_namespace, kubelet):
    await core.create_namespaced_pod(
        k8s_namespace, _pod_with_ssh_parts("no-secret", "nobody-ssh-key")
    )
    pod = await _failed(core, k8s_namespace, "no-secret")
    assert pod.status.phase == "Failed"
    assert 'secret "nobody-ssh-key" not found' in pod.status.message
    assert kubelet.find(k8s_namespace, "no-secret").proc is None


@pytest.mark.cluster
async def test_a_secret_without_the_private_key_fails_the_mount(
    core, k8s_namespace, kubelet
):
    # hubext's own check refuses such a Secret before any pod exists, so
    # this pod is made by hand: the listed key is missing, the mount fails
    await _user_secret(core, k8s_namespace, "broken-key", drop=[sshkeys.PRIVATE_KEY])
    await core.create_namespaced_pod(
        k8s_namespace, _pod_with_ssh_parts("no-key", "broken-key")
    )
    pod = await _failed(core, k8s_namespace, "no-key")
    assert pod.status.phase == "Failed"
    assert "has no key 'ssh.priv'" in pod.status.message
    assert kubelet.find(k8s_namespace, "no-key").proc is None
