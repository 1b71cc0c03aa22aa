"""Every per-user Kubernetes name, and the path form of the username.

All names a user owns (their PVC, their SSH Secret) and the directory their
storage is mounted at come from one function, `user_slug`, so that two
users can never end up sharing an object: isolation is a property of this
module, not of each caller.

`user_slug` is exactly the form KubeSpawner 7 puts in `{username}` with
`slug_scheme = "safe"`, so a `{username}` in an admin's KubeSpawner template
and in a hubext template always mean the same string:

- a username that is already a valid DNS label (lowercase letters, digits
  and single dashes, starting with a letter, ending with a letter or digit)
  of at most 48 characters is used unchanged: `alice`, `a-b`, `jan2`;
- any other username is lowercased, runs of other characters become one
  dash, it is cut to fit, and `---` plus the first 8 hex digits of the
  SHA-256 of the *original* username are appended: `Alice` becomes
  `alice---<hash>`, `a.b` becomes `a-b---<hash>`.

An unchanged name never contains `--`, and a hashed one always contains
`---`, so the two kinds cannot meet; two hashed names can only meet if their
SHA-256 prefixes collide, and the ensure functions refuse an object whose
owner annotation names somebody else (see `owner_annotations`).
"""

import logging
import re

from kubespawner.slugs import safe_slug

from .errors import UserFacingError

# KubeSpawner 7 slugs `{username}` with this maximum; keeping the same value
# keeps our `{username}` equal to theirs.
USER_SLUG_MAX_LENGTH = 48

DEFAULT_PVC_TEMPLATE = "{username}-nfs-pvc"
DEFAULT_SSH_SECRET_TEMPLATE = "{username}-ssh-key"
DEFAULT_HOME_VOLUME_PATH_TEMPLATE = "/home/{username}-nfs-pvc"

# Labels and annotations put on every object hubext creates for a user.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "hubext"
USER_LABEL = "hubext/username"
OWNER_ANNOTATION = "hubext/username"

_DNS_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS_SUBDOMAIN_MAX = 253
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_MAX = 63


def user_slug(username: str) -> str:
    """The safe, DNS-label form of `username` used in every per-user name.

    See the module docstring for the rules; the result is at most 48
    characters, starts with a letter and is distinct for distinct usernames.
    """
    if not isinstance(username, str):
        raise TypeError(f"username must be a str, not {type(username).__name__}")
    try:
        username.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"username {username!r} is not valid Unicode text (it holds a lone "
            "surrogate); the authenticator must give text that encodes as UTF-8."
        ) from None
    return safe_slug(username, max_length=USER_SLUG_MAX_LENGTH)


def is_dns_subdomain(name: str) -> bool:
    """True if `name` is a valid Kubernetes object name (RFC 1123 subdomain)."""
    return len(name) <= _DNS_SUBDOMAIN_MAX and bool(_DNS_SUBDOMAIN.match(name))


def is_dns_label(name: str) -> bool:
    """True if `name` is a valid RFC 1123 DNS label (63 characters at most)."""
    return len(name) <= _DNS_LABEL_MAX and bool(_DNS_LABEL.match(name))


def _render(template: str, username: str, what: str) -> str:
    """Fill `{username}` in `template`, naming the template on any mistake."""
    if "{username}" not in template:
        raise ValueError(
            f"The {what} template {template!r} has no '{{username}}' field, so "
            "every user would get the same object. Put '{username}' in it, "
            f"e.g. {DEFAULT_PVC_TEMPLATE!r}."
        )
    slug = user_slug(username)
    try:
        return template.format(username=slug)
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(
            f"The {what} template {template!r} can only use the field "
            f"'{{username}}' ({e!r} is not known). Remove the other fields."
        ) from None


def object_name(template: str, username: str, what: str = "object name") -> str:
    """A per-user Kubernetes object name from `template`, checked to be valid.

    Raises ValueError naming the template when the result is not a valid
    object name (e.g. the template has capitals or underscores).
    """
    name = _render(template, username, what)
    if not is_dns_subdomain(name):
        raise ValueError(
            f"The {what} template {template!r} gives {name!r}, which is not a "
            "valid Kubernetes name: use only lowercase letters, digits, '-' "
            "and '.', start and end with a letter or digit, 253 characters "
            f"at most, e.g. {DEFAULT_PVC_TEMPLATE!r}."
        )
    return name


def pvc_name(username: str, template: str = DEFAULT_PVC_TEMPLATE) -> str:
    """Name of the user's storage PersistentVolumeClaim, e.g. `alice-nfs-pvc`."""
    return object_name(template, username, what="PVC name")


def ssh_secret_name(username: str, template: str = DEFAULT_SSH_SECRET_TEMPLATE) -> str:
    """Name of the Secret holding the user's SSH keypair, e.g. `alice-ssh-key`."""
    return object_name(template, username, what="SSH Secret name")


def home_volume_path(
    username: str, template: str = DEFAULT_HOME_VOLUME_PATH_TEMPLATE
) -> str:
    """Where the user's storage is mounted, e.g. `/home/alice-nfs-pvc`.

    The username part is `user_slug(username)`: the plain username when it is
    a lowercase DNS label, otherwise the dashed form with a hash suffix, so
    the path never holds a space, a slash or a character a shell would need
    quoted.
    """
    path = _render(template, username, what="storage mount path")
    parts = path.split("/")
    if not path.startswith("/") or ".." in parts or "." in parts or "" in parts[1:]:
        raise ValueError(
            f"The storage mount path template {template!r} gives {path!r}: it "
            "must be an absolute path without '.', '..' or empty parts, e.g. "
            f"{DEFAULT_HOME_VOLUME_PATH_TEMPLATE!r}."
        )
    return path


def user_labels(username: str) -> dict:
    """Labels for every per-user object, so admins can list them with `-l`."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, USER_LABEL: user_slug(username)}


def owner_annotations(username: str) -> dict:
    """Annotations recording the exact username that owns an object.

    The ensure functions compare this with the user asking, so an object that
    belongs to someone else is never handed out, even if two slugs collided.
    """
    return {OWNER_ANNOTATION: username}


class OwnerMismatch(UserFacingError):
    """An existing per-user object is recorded as another user's."""


def _field(metadata, name: str):
    """A field of an object's metadata, a model or a dict."""
    if isinstance(metadata, dict):
        return metadata.get(name)
    return getattr(metadata, name, None)


def owner_of(metadata) -> str | None:
    """The username recorded on an object's metadata (model or dict), if any."""
    return (_field(metadata, "annotations") or {}).get(OWNER_ANNOTATION)


#: The `kubectl` resource of each kind of per-user object, for admins' fixes.
_KUBECTL_RESOURCE = {"storage volume": "pvc", "SSH key": "secret"}


def check_owner(kind: str, name: str, metadata, username: str, log=None) -> None:
    """Refuse an existing object unless it records `username` as its owner.

    An object without the annotation (made by hand, or before hubext) could
    be anybody's: handing it to whoever's name maps onto it would give one
    user another's volume or key wherever two naming schemes meet (a claim
    `alice-2esmith-nfs-pvc` made for `alice.smith` by an older escaping, and
    a user called `alice-2esmith`). An admin adopts it for its owner with
    `kubectl annotate`; the log names the command.
    """
    log = log or logging.getLogger(__name__)
    owner = owner_of(metadata)
    if owner is None:
        namespace = _field(metadata, "namespace") or "<namespace>"
        kubectl = f"kubectl --namespace {namespace}"
        resource = f"{_KUBECTL_RESOURCE.get(kind, kind)} {name}"
        log.warning(
            "%s %s has no %s annotation, so it was not used for user %r. If it "
            "is theirs: %s annotate %s %s=<their username>; %s label %s %s=%s",
            *(kind, name, OWNER_ANNOTATION, username),
            *(kubectl, resource, OWNER_ANNOTATION),
            *(kubectl, resource, MANAGED_BY_LABEL, MANAGED_BY_VALUE),
        )
        raise OwnerMismatch(
            f"Your {kind} '{name}' exists but is not recorded as belonging to "
            "any account, so it was not used. Please send this message to the "
            "hub admins: once they record it as yours, launch again.",
            kind=kind,
            name=name,
            owner=None,
            username=username,
        )
    if owner != username:
        raise OwnerMismatch(
            f"Your {kind} '{name}' is already recorded as belonging to another "
            "account, so it was not used. Please contact the hub admins and "
            "quote this message.",
            kind=kind,
            name=name,
            owner=owner,
            username=username,
        )
