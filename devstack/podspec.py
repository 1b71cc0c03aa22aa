"""Pure functions turning a pod into a local process and back into status.

The test kubelet reads a pod that a spawner created and runs the real
`jupyterhub-singleuser` in its place. What to run, with which environment,
and what status to report are decided here, without I/O, so they can be
tested against literal pods.
"""

import datetime
from urllib.parse import urlsplit, urlunsplit

from .net import is_loopback

DEFAULT_PORT = 8888


def now() -> str:
    """The current time in the RFC 3339 form Kubernetes uses."""
    return (
        datetime.datetime.now(datetime.timezone.utc)
        .replace(microsecond=0)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def node_manifest(name: str) -> dict:
    """The Node the test kubelet registers as."""
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def node_status(name: str, host_ip: str) -> dict:
    """The Node's status patch: Ready, at `host_ip`."""
    stamp = now()
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "hubext test kubelet",
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }
    addresses = [
        {"type": "InternalIP", "address": host_ip},
        {"type": "Hostname", "address": name},
    ]
    return {"status": {"addresses": addresses, "conditions": [ready]}}


def main_container(pod: dict) -> dict:
    """The container serving the notebook: `notebook-port` or the first."""
    containers = pod["spec"]["containers"]
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("name") == "notebook-port":
                return container
    return containers[0]


def container_port(container: dict) -> int:
    """The port the pod says it serves on (KubeSpawner's `notebook-port`)."""
    ports = container.get("ports") or []
    for port in ports:
        if port.get("name") == "notebook-port":
            return int(port["containerPort"])
    return int(ports[0]["containerPort"]) if ports else DEFAULT_PORT


def field_value(pod: dict, path: str, pod_ip: str, host_ip: str) -> str:
    """Resolve an env `fieldRef` the way the kubelet does, for common paths."""
    meta = pod["metadata"]
    values = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.hostIP": host_ip,
    }
    if path.startswith("metadata.labels['"):
        return (meta.get("labels") or {}).get(path[17:-2], "")
    if path.startswith("metadata.annotations['"):
        return (meta.get("annotations") or {}).get(path[22:-2], "")
    return values.get(path, "")


def env_sources(containers: list) -> list[tuple[str, str]]:
    """The ("secret"|"configMap", name) objects the containers' `env` reads."""
    kinds = {"secretKeyRef": "secret", "configMapKeyRef": "configMap"}
    found: list[tuple[str, str]] = []
    for container in containers:
        for var in container.get("env") or []:
            for ref, kind in kinds.items():
                source = (var.get("valueFrom") or {}).get(ref)
                if source and (kind, source["name"]) not in found:
                    found.append((kind, source["name"]))
    return found


def resolve_env(pod, container, pod_ip, host_ip, lookup) -> dict[str, str]:
    """The container's environment as a dict.

    `lookup(kind, name, key)` fetches a Secret or ConfigMap value (`kind` is
    "secret" or "configmap") and returns None if it is missing; an optional
    reference that is missing is skipped, like the real kubelet does.
    """
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if "valueFrom" not in var:
            env[var["name"]] = _expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        value = None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = lookup("secret", ref["name"], ref["key"])
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = lookup("configmap", ref["name"], ref["key"])
        if value is not None:
            env[var["name"]] = value
    return env


def _expand(value: str, env: dict) -> str:
    """Kubernetes' `$(VAR)` expansion of earlier variables."""
    for name, val in env.items():
        value = value.replace(f"$({name})", val)
    return value


def rebind_service_url(url: str, ip: str, port: int) -> str:
    """JUPYTERHUB_SERVICE_URL with its host replaced by the pod's address."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{ip}:{port}"))


def check_loopback_urls(env: dict) -> None:
    """Refuse to start a server that would talk to a non-loopback hub."""
    for key in (
        "JUPYTERHUB_API_URL",
        "JUPYTERHUB_SERVICE_URL",
        "JUPYTERHUB_ACTIVITY_URL",
    ):
        host = urlsplit(env.get(key, "")).hostname
        if host and host != "localhost" and not is_loopback(host):
            raise ValueError(
                f"{key}={env[key]} is not a loopback address; the test kubelet "
                "only runs servers that talk to 127.0.0.0/8. Set the hub's "
                "`c.JupyterHub.hub_connect_ip = '127.0.0.1'`."
            )


def singleuser_args(container: dict, ip: str, port: int) -> list[str]:
    """Options for `jupyterhub-singleuser`, bound to `ip:port`.

    The image's program is replaced by the local one, so only the `--`
    options of the container's command and args are kept; the spawner's own
    `--ip`/`--port` (usually 0.0.0.0:8888) give way to the loopback address.
    """
    words = list(container.get("command") or []) + list(container.get("args") or [])
    kept = [
        w for w in words if w.startswith("--") and not w.startswith(("--ip", "--port"))
    ]
    return kept + [f"--ip={ip}", f"--port={port}"]


def running_status(pod: dict, ip: str, host_ip: str, pid: int) -> dict:
    """Pod status for a process that serves: Running and Ready at `ip`."""
    stamp = now()
    spec = pod["spec"]
    conditions = [
        {"type": t, "status": "True", "lastTransitionTime": stamp}
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": stamp,
        "initContainerStatuses": [
            _container_status(
                c,
                False,
                {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": stamp,
                        "finishedAt": stamp,
                    }
                },
            )
            for c in spec.get("initContainers") or []
        ],
        "containerStatuses": [
            _container_status(
                c, True, {"running": {"startedAt": stamp}}, f"hubext://{pid}"
            )
            for c in spec["containers"]
        ],
    }


def failed_status(pod: dict, exit_code: int, message: str) -> dict:
    """Pod status for a process that exited before it served."""
    stamp = now()
    return {
        "phase": "Failed",
        "message": message,
        "reason": "Error",
        "containerStatuses": [
            _container_status(
                c,
                False,
                {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Error",
                        "message": message,
                        "startedAt": stamp,
                        "finishedAt": stamp,
                    }
                },
            )
            for c in pod["spec"]["containers"]
        ],
    }


def init_failed_status(pod: dict, index: int, exit_code: int, message: str) -> dict:
    """Pod status once init container `index` failed (kubectl: Init:Error).

    The ones before it completed, the later ones and the app containers
    never started; the pod is Failed, its message the container's output.
    """
    stamp = now()
    spec = pod["spec"]
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": stamp}}
    failed = {
        "terminated": {
            "exitCode": exit_code,
            "reason": "Error",
            "message": message,
            "startedAt": stamp,
            "finishedAt": stamp,
        }
    }
    waiting = {"waiting": {"reason": "PodInitializing"}}
    inits = []
    for i, container in enumerate(spec.get("initContainers") or []):
        state = done if i < index else failed if i == index else waiting
        inits.append(_container_status(container, False, state))
    return {
        "phase": "Failed",
        "reason": "Error",
        "message": message,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            {
                "type": "Initialized",
                "status": "False",
                "reason": "ContainersNotInitialized",
                "message": f"containers with incomplete status: [{spec['initContainers'][index]['name']}]",
                "lastTransitionTime": stamp,
            },
        ],
        "initContainerStatuses": inits,
        "containerStatuses": [
            _container_status(c, False, waiting) for c in spec["containers"]
        ],
    }


def config_error_status(pod: dict, name: str, message: str) -> dict:
    """Pod status once container `name` could not be created from its spec
    (a refused `subPath`): the kubelet's CreateContainerConfigError.

    The init containers before it completed; it and every later container
    are `waiting`, it with the reason and message. A real kubelet keeps the
    pod Pending and retries; the test kubelet gives up at once, as it does
    for a failed mount.
    """
    stamp = now()
    spec = pod["spec"]
    inits = spec.get("initContainers") or []
    names = [c["name"] for c in inits]
    done_before = names.index(name) if name in names else len(names)
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": stamp}}
    refused = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}

    def state(i: int, container: dict) -> dict:
        if i < done_before:
            return done
        if container["name"] == name:
            return refused
        return {"waiting": {"reason": later}}

    later = "PodInitializing" if done_before < len(inits) else "ContainerCreating"

    everything = [*inits, *spec["containers"]]
    statuses = [
        _container_status(c, False, state(i, c)) for i, c in enumerate(everything)
    ]
    return {
        "phase": "Failed",
        "reason": "CreateContainerConfigError",
        "message": message,
        "initContainerStatuses": statuses[: len(inits)],
        "containerStatuses": statuses[len(inits) :],
    }


def _container_status(container, ready, state, container_id=None) -> dict:
    status = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
    }
    if container_id:
        status["containerID"] = container_id
    return status
