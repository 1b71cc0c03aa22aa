"""The institutional spawner: a thin KubeSpawner subclass.

Each launch, before KubeSpawner builds the pod, `HubextSpawner`:

0. checks the launch options (`launchoptions`): they are attacker input, and
   from here on only the validated plain strings are used;
1. refuses the start if it would take the user over their project quota;
2. reads `.resources` from the launched repository at the launched commit
   and sets CPU, memory and GPU from it, within the site policy;
3. makes sure the user's NFS claim and SSH key Secret exist, and mounts both
   (2 and 3 run at once: none needs another's result);
4. records repo, commit and effective resources on the pod.

Every failure a user can fix arrives as one `UserFacingError`, which
`lifecycle` turns into JupyterHub's user-facing spawn error, so the
BinderHub launch page shows "Spawn failed: <message>". All the work lives in
the concern modules; this class only wires them together.
"""

import asyncio
import functools
import inspect
import json
from datetime import datetime, timezone

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default, validate

from . import known, lifecycle, names, quota, sshkeys, storage
from .errors import UserFacingError
from .launchoptions import LaunchOptions, check_launch_options
from .repofiles import NOT_CACHED, RepoFileFetcher
from .resources import ResourcePolicy, granted_line, parse_resources

#: Labels and annotations hubext puts on the pods it launches.
COMMIT_LABEL = "hubext/commit"
#: Characters a label value holds: a SHA-256 commit (64) is cut to this.
LABEL_VALUE_MAX = 63
REPO_ANNOTATION = "hubext/repo-url"
RESOURCES_ANNOTATION = "hubext/resources"
#: Seconds the first launch waits for the watch of claims or Secrets to load.
WATCH_START_TIMEOUT = 10


def merge_by_name(current, ours: list) -> list:
    """`current` without entries named like one of `ours`, then `ours`.

    Relaunching the same server must not stack up copies of our volumes,
    and an admin's own entries stay in place; one with our name gives way.
    """
    return _merge(current, ours, "name", "name")


def merge_by_mount_path(current, ours: list) -> list:
    """The same for volume mounts, keyed by `mountPath`: one volume may be
    mounted at several paths (the SSH Secret's two files), one path never
    twice (the API server refuses that)."""
    return _merge(current, ours, "mountPath", "mount_path")


def _merge(current, ours: list, key: str, attr: str) -> list:
    if isinstance(current, dict):  # KubeSpawner's dict form, in key order
        current = [current[k] for k in sorted(current)]
    taken = {item[key] for item in ours}
    kept = [item for item in current if _key_of(item, key, attr) not in taken]
    return kept + list(ours)


def _key_of(item, key: str, attr: str):
    """A dict's `key`, or a Kubernetes model object's `attr`."""
    return item.get(key) if isinstance(item, dict) else getattr(item, attr, None)


async def _refused_by_cluster(what: str, request):
    """Await a Kubernetes request; a refusal becomes a message for the user.

    A namespace quota, a missing StorageClass or missing permissions are the
    admins' to fix; the user learns what failed and whom to ask.
    """
    try:
        return await request
    except ApiException as e:
        detail = _api_message(e)
        raise UserFacingError(
            f"The cluster refused to create your {what} (HTTP {e.status}: "
            f"{detail}). Please send this message to the hub admins.",
            status=e.status,
            reason=e.reason,
        ) from None


async def _all_or_first_error(*steps):
    """Call each of `steps`, await at once the ones that must ask something,
    and return their results in order.

    A step answers at once when the hub already knows its result, or
    returns an awaitable; when none has to ask, the launch makes no trip
    through the event loop, which a burst of launches keeps busy. If any
    fails, the first failure in argument order is raised once all have
    ended, so the same launch always shows the same message and no step is
    left running behind the refusal.
    """
    results = []
    for step in steps:
        try:
            results.append(step())
        except Exception as e:
            results.append(e)
    asked = [i for i, result in enumerate(results) if inspect.isawaitable(result)]
    if asked:
        answers = await asyncio.gather(
            *(results[i] for i in asked), return_exceptions=True
        )
        for i, answer in zip(asked, answers, strict=True):
            results[i] = answer
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _api_message(e: ApiException) -> str:
    """The API server's own one-line explanation, else the HTTP reason."""
    try:
        return json.loads(e.body)["message"]
    except (TypeError, ValueError, KeyError):
        return e.reason or "no detail"


def _literal(text: str) -> str:
    """`text` protected from KubeSpawner's `{...}` expansion of labels and
    annotations: values from a launch must never be read as a template."""
    return text.replace("{", "{{").replace("}", "}}")


class HubextSpawner(KubeSpawner):
    """KubeSpawner for authenticated BinderHub launches at an institution."""

    resource_policy = Dict(
        config=True,
        help="""Defaults and maxima for what a `.resources` file may ask for.

        Same structure as the policy file of `hubext resources check`; any
        subset of keys. Default: defaults gpu=0, cpur=1, cpul=8, memr=1,
        meml=16 (GB = GiB); maxima gpu=0, cpur=32, cpul=32, memr=256,
        meml=256. Example::

            c.HubextSpawner.resource_policy = {
                "defaults": {"cpur": 1, "cpul": 8, "memr": 1, "meml": 16},
                "maxima": {"gpu": 2, "cpul": 32, "meml": 256},
                "gpu_resource": "nvidia.com/gpu",
            }
        """,
    )

    @validate("resource_policy")
    def _validate_resource_policy(self, proposal):
        try:
            ResourcePolicy.from_dict(proposal.value)
        except ValueError as e:
            raise ValueError(f"c.HubextSpawner.resource_policy: {e}") from None
        return proposal.value

    resources_file = Unicode(
        ".resources",
        config=True,
        help="""Path, in the launched repository, of the resources file.

        Default: `.resources` at the repository root. Example::

            c.HubextSpawner.resources_file = ".binder/.resources"
        """,
    )

    allowed_images = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        config=True,
        help="""Image prefixes a launch may ask for: your BinderHub image prefix.

        BinderHub sends the image it built, but any signed-in user can call
        the hub's REST API with an image of their choosing. Prefixes match
        on path boundaries: "quay.io/org/" admits "quay.io/org/x" but never
        "quay.io/org-evil/x"; "registry.example.edu/binder/binder-" (a
        BinderHub `image_prefix`) admits "registry.example.edu/binder/binder-x".
        None (the default) refuses every launch that names an image, until
        you set it; an empty list accepts any image, and the hub warns
        about that when it starts. The Helm chart fills it from
        `imagePrefix`. Example::

            c.HubextSpawner.allowed_images = ["registry.example.edu/binder/binder-"]
        """,
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.allowed_images == [] and not HubextSpawner._warned_any_image:
            HubextSpawner._warned_any_image = True
            self.log.warning(
                "c.HubextSpawner.allowed_images is empty: every signed-in user "
                "can launch any image through the hub's REST API. Set it to "
                "your BinderHub image prefix."
            )

    _warned_any_image = False  # once per hub process

    storage_enabled = Bool(
        True,
        config=True,
        help="""Mount the user's shared NFS volume in every server.

        Default: True. Example: `c.HubextSpawner.storage_enabled = False`
        """,
    )

    storage_class_name = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""StorageClass of the user's claim: your ReadWriteMany NFS class.

        Default: None, the cluster's default class. Example::

            c.HubextSpawner.storage_class_name = "nfs-csi"
        """,
    )

    storage_size = Unicode(
        "10Gi",
        config=True,
        help="""Size requested for each user's claim, a Kubernetes quantity.

        Changing it later does not resize existing claims. Default: "10Gi".
        Example: `c.HubextSpawner.storage_size = "50Gi"`
        """,
    )

    storage_access_modes = List(
        Unicode(),
        default_value=["ReadWriteMany"],
        config=True,
        help="""Access modes of the user's claim. All of a user's servers
        mount it at once, which needs ReadWriteMany.

        Default: ["ReadWriteMany"]. Example::

            c.HubextSpawner.storage_access_modes = ["ReadWriteMany"]
        """,
    )

    storage_claim_name_template = Unicode(
        names.DEFAULT_PVC_TEMPLATE,
        config=True,
        help="""Name of the user's claim; `{username}` is the safe username.

        Default: "{username}-nfs-pvc". Example::

            c.HubextSpawner.storage_claim_name_template = "{username}-nfs-pvc"
        """,
    )

    storage_mount_path_template = Unicode(
        names.DEFAULT_HOME_VOLUME_PATH_TEMPLATE,
        config=True,
        help="""Where the user's volume is mounted; `{username}` is the safe
        username (the username itself when it is a lowercase DNS label).

        Default: "/home/{username}-nfs-pvc". Example::

            c.HubextSpawner.storage_mount_path_template = "/home/{username}-nfs-pvc"
        """,
    )

    ssh_enabled = Bool(
        True,
        config=True,
        help="""Give every server the user's SSH keypair in `ssh_dir`.

        Default: True. Example: `c.HubextSpawner.ssh_enabled = False`
        """,
    )

    ssh_key_type = Unicode(
        sshkeys.DEFAULT_KEY_TYPE,
        config=True,
        help=f"""Type of newly generated keys: one of {", ".join(sshkeys.KEY_TYPES)}.

        Existing keys are kept whatever their type. Default: "ed25519".
        Example: `c.HubextSpawner.ssh_key_type = "rsa-4096"`
        """,
    )

    @validate("ssh_key_type")
    def _validate_ssh_key_type(self, proposal):
        if proposal.value not in sshkeys.KEY_TYPES:
            raise ValueError(
                f"c.HubextSpawner.ssh_key_type = {proposal.value!r} is not one of "
                f"{', '.join(sshkeys.KEY_TYPES)}"
            )
        return proposal.value

    ssh_dir = Unicode(
        sshkeys.DEFAULT_SSH_DIR,
        config=True,
        help="""The notebook's `~/.ssh`, holding `ssh.priv` and `ssh.pub`.

        Default: "/home/jovyan/.ssh" (the Binder image home). Example::

            c.HubextSpawner.ssh_dir = "/home/jovyan/.ssh"
        """,
    )

    ssh_secret_name_template = Unicode(
        names.DEFAULT_SSH_SECRET_TEMPLATE,
        config=True,
        help="""Name of the user's SSH key Secret; `{username}` is the safe
        username. Default: "{username}-ssh-key". Example::

            c.HubextSpawner.ssh_secret_name_template = "{username}-ssh-key"
        """,
    )

    notebook_uid = Integer(
        1000,
        config=True,
        help="""User and group id the notebook runs as, and the pod's fsGroup.

        Binder images run as uid 1000 (`jovyan`). Default: 1000. Example:
        `c.HubextSpawner.notebook_uid = 1000`
        """,
    )

    @default("uid")
    def _default_uid(self):
        return self.notebook_uid

    @default("gid")
    def _default_gid(self):
        return self.notebook_uid

    @default("fs_gid")
    def _default_fs_gid(self):
        return self.notebook_uid

    @default("slug_scheme")
    def _default_slug_scheme(self):
        return "safe"

    refusal_wait = Float(
        10.0,
        config=True,
        help="""Seconds a refused launch waits for someone to watch its progress.

        BinderHub asks for the progress stream right after the hub accepts
        the launch; a refusal that lands before that is only seen as "not
        starting". So the refusal is held until the stream is open (or this
        many seconds pass), and the launch page shows the message. Default:
        10. Example: `c.HubextSpawner.refusal_wait = 10`
        """,
    )

    remove_refused_launches = Bool(
        True,
        config=True,
        help="""Remove a BinderHub launch's server if its launch was refused.

        BinderHub gives each attempt a new server name and retries a failed
        launch four times, so every refused attempt (a bad `.resources`, an
        unreachable repository host, a full quota) would otherwise stay
        behind as a stopped server that counts against the user's project
        quota. Only servers that never ran are removed, a few seconds after
        the refusal was shown. Default: True. Example::

            c.HubextSpawner.remove_refused_launches = True
        """,
    )

    # One fetcher per hub process, so its cache and in-flight sharing span
    # every user's launches.
    _fetcher = None

    def repo_file_fetcher(self) -> RepoFileFetcher:
        cls = type(self)
        if cls._fetcher is None:
            cls._fetcher = RepoFileFetcher(config=self.config, log=self.log)
        return cls._fetcher

    _watch = lifecycle.ProgressWatch()  # a new one per start
    _refused = False
    _granted = ""  # the launch page's resources line (granted_line)
    _granted_shown = False

    @default("progress_ready_hook")
    def _default_progress_ready_hook(self):
        return lifecycle.ready_with_granted

    def start(self):
        self._watch = lifecycle.ProgressWatch()
        self._refused = False
        since = datetime.now(timezone.utc)
        return asyncio.ensure_future(
            lifecycle.start_unless_setup_fails(self, super().start(), since)
        )

    async def progress(self):
        """What the server was given, then KubeSpawner's progress events; a
        refused server goes once they end."""
        self._watch.watched()
        try:
            if self._granted:
                self._granted_shown = True
                yield {"progress": 1, "message": self._granted}
            async for event in super().progress():
                yield event
        finally:  # the hub writes the "failed" event right after this
            if self._refused_server_removable():
                lifecycle.remove_later(self, lifecycle.REMOVAL_GRACE)

    #: The validated launch options; `user_options` holds the same, as a dict.
    launch_options = LaunchOptions()

    def options_from_query(self, query_data):
        """No launch options from a link: a `/hub/spawn` URL starts the
        server as it would without a query, whatever its query says.

        JupyterHub starts a server straight from the query of a GET of
        `/hub/spawn/{user}/{name}` (KubeSpawner reads
        `profile-option-*--image=...` as launch options), and a browser
        sends the hub's cookie with a top-level navigation from any site,
        with no XSRF check. A link on another site would then pick the
        image and repository of the victim's server, with the victim's
        volume and SSH key mounted. None, not `{}`: the server keeps the
        checked options it was saved with (a stopped project restarts as
        itself), and a new one gets the site's defaults.
        """
        if query_data:
            self.log.warning(
                "Launch of %s from a /hub/spawn link: its query (%s) is not "
                "used; launches with options go through the REST API",
                self._log_name,
                ", ".join(repr(str(key)[:64]) for key in sorted(query_data)[:10]),
            )
        return None

    async def load_user_options(self):
        """The launch options checked, KubeSpawner's, then hubext's steps."""
        self._granted, self._granted_shown = "", False
        try:
            self._accept_launch_options()
            await super().load_user_options()
            await self._prepare_launch()
        except UserFacingError as e:
            self.log.warning(
                "Launch of %s refused: %s %s", self._log_name, e.message, e.fields
            )
            self._refused = True
            if self._refused_server_removable():  # also when nobody watches
                delay = self.refusal_wait + lifecycle.UNWATCHED_REMOVAL_DELAY
                lifecycle.remove_later(self, delay)
            await self._watch.until_watched(self.refusal_wait)
            raise lifecycle.spawn_error(e) from None

    def _refused_server_removable(self) -> bool:
        """A refused BinderHub launch's server that never ran goes: BinderHub
        names every attempt anew and retries four times, and each would
        count against the quota. One with a launch record is a project."""
        return bool(
            self._refused
            and self.remove_refused_launches
            and self.name
            and self.launch_options.from_binderhub
            and self.launch_record is None
        )

    def _accept_launch_options(self):
        """Replace `user_options` by its validated form, before anything reads it.

        The hub's database keeps only validated options too (nothing at all
        for a refused set), so a later start without options cannot bring
        back what was refused.
        """
        try:
            options = check_launch_options(self.user_options, self.allowed_images)
        except UserFacingError:
            self.launch_options = LaunchOptions()
            self.user_options = {}  # nor in the panel, nor in API answers
            self._store_user_options({})
            raise
        if options.dropped:
            self.log.warning(
                "Launch of %s: ignored %d unknown launch option(s): %s",
                self._log_name,
                len(options.dropped),
                ", ".join(repr(key) for key in options.dropped[:10]),
            )
        self.launch_options = options
        self.user_options = options.as_user_options()
        self._store_user_options(self.user_options)

    def _store_user_options(self, options: dict):
        if self.orm_spawner is not None and self.orm_spawner.user_options != options:
            self.orm_spawner.user_options = options
            if self.db is not None:
                self.db.commit()

    @property
    def _log_name(self) -> str:
        return f"{self.user.name}/{self.name}" if self.name else self.user.name

    async def _prepare_launch(self):
        quota.check_spawn(
            self.user, self.name, quota.policy_from_settings(self.user.settings)
        )
        launch, resources, claim, secret = await self._launch_needs()
        self._apply_resources(resources)
        if claim:
            self._mount_storage(claim)
        if secret:
            self._mount_ssh_identity(secret)
        self._record_launch(launch, resources)

    async def _launch_needs(self):
        """The launch's repo@commit, its resources, and the user's claim and
        key Secret, each read or made only if the hub does not know it."""
        self._apply_image()
        launch = self._launch_ref()
        # None of the three needs another's result: they go at once, so a
        # launch waits for the slowest of them, not for their sum.
        resources, claim, secret = await _all_or_first_error(
            functools.partial(self._effective_resources, launch),
            self._ensure_storage,
            self._ensure_ssh_identity,
        )
        return launch, resources, claim, secret

    async def prepare_ahead(self) -> str:
        """A launch's checks and objects before it is asked for (`hubext.ahead`):
        its options checked, `.resources` read into the hub's cache and
        checked, the user's claim and key Secret made. Starts nothing; the
        launch itself then finds all of it known. Returns the line the launch
        page will show; raises the launch's `UserFacingError`."""
        self._accept_launch_options()
        await super().load_user_options()  # the admins' profile overrides
        await self._launch_needs()
        return self._granted

    def _apply_resources(self, resources):
        for trait, value in resources.kubespawner_options(
            self._policy.gpu_resource
        ).items():
            if trait == "extra_resource_limits":
                value = self._with_gpu(value)
            setattr(self, trait, value)

    @property
    def _policy(self) -> ResourcePolicy:
        return ResourcePolicy.from_dict(self.resource_policy)

    def _apply_image(self):
        if self.launch_options.image:  # checked against allowed_images
            self.image = self.launch_options.image

    def _launch_ref(self):
        """The launched repo@commit; None for a launch not from BinderHub,
        or one whose commit cannot be read when the site falls back to its
        defaults (`RepoFileFetcher.on_error`)."""
        if not self.launch_options.from_binderhub:
            return None
        return self.repo_file_fetcher().launch_ref(self.user_options)

    def _effective_resources(self, launch):
        """The launch's resources; an awaitable of them when `.resources`
        at this commit must be read first."""
        data = None
        if launch is not None:
            data = self.repo_file_fetcher().cached(
                self.user_options, self.resources_file
            )
            if data is NOT_CACHED:
                return self._fetched_resources(launch)
        return self._granted_resources(data, launch)

    async def _fetched_resources(self, launch):
        data = await self.repo_file_fetcher().fetch(
            self.user_options, self.resources_file
        )
        return self._granted_resources(data, launch)

    def _granted_resources(self, data, launch):
        resources = parse_resources(data, self._policy, filename=self.resources_file)
        self._granted = granted_line(
            resources,
            self.resources_file,
            launch.commit if launch else None,
            found=data is not None,
        )
        return resources

    def _with_gpu(self, gpu_limits: dict) -> dict:
        """The admin's extra limits, with our GPU key set or removed."""
        limits = dict(self.extra_resource_limits)
        limits.pop(self._policy.gpu_resource, None)
        limits.update(gpu_limits)
        return limits

    def _ensure_storage(self):
        """The user's claim name; an awaitable of it when the hub does not
        know the claim (then it is made, 409-safe)."""
        if not self.storage_enabled:
            return None
        claim = names.object_name(
            self.storage_claim_name_template, self.user.name, "storage claim name"
        )
        claims = self._watch_if_running(known.ClaimReflector)
        if known.known_claim(claims, self.namespace, claim, self.user.name):
            return claim
        return self._make_claim(claim)

    async def _make_claim(self, claim: str) -> str:
        username = self.user.name
        claims = await self._watched(known.ClaimReflector)
        if not known.known_claim(claims, self.namespace, claim, username):
            manifest = storage.make_user_pvc(
                claim,
                username,
                self.storage_class_name,
                self.storage_size,
                self.storage_access_modes,
            )
            await _refused_by_cluster(
                "storage volume",
                storage.ensure_pvc(self.api, self.namespace, manifest, log=self.log),
            )
        return claim

    def _mount_storage(self, claim: str):
        path = names.home_volume_path(self.user.name, self.storage_mount_path_template)
        self.volumes = merge_by_name(self.volumes, [storage.home_volume(claim)])
        self.volume_mounts = merge_by_name(
            self.volume_mounts, [storage.home_volume_mount(path)]
        )

    def _ensure_ssh_identity(self):
        """The user's key Secret name; an awaitable of it when the hub does
        not know the Secret (then it is made, 409-safe)."""
        if not self.ssh_enabled:
            return None
        secret = names.object_name(
            self.ssh_secret_name_template, self.user.name, "SSH key Secret name"
        )
        self._public_key = known.known_public_key(
            self._watch_if_running(known.KeySecretReflector),
            self.namespace,
            secret,
            self.user.name,
        )
        if self._public_key:
            return secret
        return self._make_ssh_identity(secret)

    async def _make_ssh_identity(self, secret: str) -> str:
        username = self.user.name
        secrets = await self._watched(known.KeySecretReflector)
        self._public_key = known.known_public_key(
            secrets, self.namespace, secret, username
        ) or await _refused_by_cluster(
            "SSH key",
            sshkeys.ensure_ssh_secret(
                self.api,
                self.namespace,
                secret,
                username,
                key_type=self.ssh_key_type,
                log=self.log,
                likely_absent=known.unseen(secrets, self.namespace, secret),
            ),
        )
        return secret

    def _mount_ssh_identity(self, secret: str):
        parts = sshkeys.ssh_pod_parts(secret, self.ssh_dir)
        self.volumes = merge_by_name(self.volumes, parts["volumes"])
        self.volume_mounts = merge_by_mount_path(
            self.volume_mounts, parts["volume_mounts"]
        )

    def _watch_if_running(self, reflector_class):
        """The hub's watch of one kind if it already runs and has loaded,
        else None; never waits."""
        reflector = self._reflector_of(reflector_class)
        return reflector if known.watching(reflector) else None

    def _reflector_of(self, reflector_class):
        return self.reflectors.get(
            self._get_reflector_key(f"hubext-{reflector_class.kind}")
        )

    async def _watched(self, reflector_class):
        """The hub's watch of hubext's objects of one kind (`hubext.known`),
        started by the first launch; None if it cannot run (the launch then
        asks the API server, as without it)."""
        key = (self.namespace, reflector_class.kind)
        if key in HubextSpawner._unwatchable:
            return None
        current = self._reflector_of(reflector_class)
        # one that loaded and then gave up is replaced by a new watch
        gave_up = (
            current is not None
            and current.first_load_future.done()
            and not known.watching(current)
        )
        try:
            return await asyncio.wait_for(
                self._start_reflector(
                    f"hubext-{reflector_class.kind}",
                    reflector_class,
                    replace=gave_up,
                ),
                WATCH_START_TIMEOUT,
            )
        except Exception as e:  # RBAC, say: the launch works without it
            HubextSpawner._unwatchable.add(key)
            self.log.warning(
                "Cannot watch %s in %s (%s): every launch asks the API server",
                reflector_class.kind,
                self.namespace,
                e or type(e).__name__,
            )
            return None

    _unwatchable: set = set()  # (namespace, kind) whose watch did not start

    def _record_launch(self, launch, resources):
        """Repo, commit and resources on the pod and in the hub's state of
        this server, for the control panel."""
        self.launch_record = {
            "repo_url": launch.repo_url if launch else None,
            "commit": launch.commit if launch else None,
            "ref_url": self.launch_options.binder_ref_url,
            "resources": resources.as_dict(),
            "ssh_public_key": self._public_key,
        }
        labels = dict(self.extra_labels)
        annotations = dict(self.extra_annotations)
        labels.pop(COMMIT_LABEL, None)
        annotations.pop(REPO_ANNOTATION, None)
        if launch is not None:
            labels[COMMIT_LABEL] = launch.commit[:LABEL_VALUE_MAX]
            annotations[REPO_ANNOTATION] = _literal(launch.repo_url)
        annotations[RESOURCES_ANNOTATION] = _literal(
            json.dumps(resources.as_dict(), sort_keys=True)
        )
        self.extra_labels = labels
        self.extra_annotations = annotations

    # What the control panel shows about this project; kept in the hub's
    # database with the server's state, and kept when the server stops.
    launch_record = Dict(allow_none=True, default_value=None)
    _public_key = None

    def get_state(self):
        state = super().get_state()
        if self.launch_record:
            state["hubext"] = self.launch_record
        return state

    def load_state(self, state):
        super().load_state(state)
        if state.get("hubext"):
            self.launch_record = state["hubext"]

    def clear_state(self):
        """Forget the pod, not the project: a stopped project is still listed."""
        record = self.launch_record
        super().clear_state()
        self.launch_record = record

    def get_env(self):
        """KubeSpawner's environment plus where the launch came from, from
        the validated launch options only (plain strings, never a spec)."""
        env = super().get_env()
        env.update(self.launch_options.env())
        return env
