"""Launch options: the one place where a launch's ``user_options`` are checked.

Anyone signed in can ``POST /hub/api/users/{me}/servers/{name}`` with any
JSON body, and that body becomes the spawner's ``user_options``. So it is
attacker input, and nothing else in hubext reads it: `check_launch_options`
turns it into a frozen `LaunchOptions` of plain, bounded, well-formed
strings, and the spawner replaces ``user_options`` with exactly those.

The rules:

- Only the keys BinderHub sends are kept (`BINDERHUB_KEYS`). Any other key
  is dropped and its name logged: nothing reads it, and a newer BinderHub
  adding a key must not break every launch.
- A kept key's value must be a string of its form and length (http(s)
  URLs, ``v2/<provider>/<spec>`` requests, an image reference, an IP
  address); JSON ``null`` counts as absent. Anything else (a number, a
  dict such as ``{"valueFrom": ...}``, a list, a control character, a
  200,000-character string) refuses the launch with one message naming
  the key.
- BinderHub's keys come as a set: ``binder_persistent_request`` (the
  resolved commit), ``repo_url`` and ``image`` together. A launch with none
  of them (the REST API, the control panel) gets the site's defaults; a
  launch with only some of them is refused rather than half-trusted.
- ``image`` must be one the admins allow (`image_allowed`).
"""

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import UserFacingError

#: Each key BinderHub sends, with the longest value accepted.
BINDERHUB_KEYS = {
    "image": 512,
    "repo_url": 2048,
    "token": 128,
    "binder_ref_url": 2048,
    "binder_launch_host": 2048,
    "binder_request": 2048,
    "binder_persistent_request": 2048,
    "binder_client_ip": 45,
}

#: The keys that make a launch a BinderHub launch; they come together.
LAUNCH_SET = ("binder_persistent_request", "repo_url", "image")

#: Environment variables the notebook gets, from the validated options only.
ENV_OF = {
    "repo_url": "BINDER_REPO_URL",
    "binder_ref_url": "BINDER_REF_URL",
    "binder_launch_host": "BINDER_LAUNCH_HOST",
    "binder_request": "BINDER_REQUEST",
    "binder_persistent_request": "BINDER_PERSISTENT_REQUEST",
}

# [registry[:port]/]path[:tag][@digest], as container runtimes read it
_IMAGE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@sha256:[0-9a-f]{64})?"
)
# v2/<provider prefix>/<spec>: printable ASCII, no spaces, quotes or braces
_REQUEST = re.compile(r"v2/[A-Za-z0-9_-]+/[!#-&(-z|~]+")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_URL_CHARS = re.compile(r"[!#-&(-;=?-z|~]+")  # printable, no space, quotes, <>{}


class LaunchOptionsError(UserFacingError):
    """A launch whose options cannot be used; the message names the key."""


@dataclass(frozen=True)
class LaunchOptions:
    """The validated launch: each field a checked string, or None if absent."""

    image: str | None = None
    repo_url: str | None = None
    token: str | None = None
    binder_ref_url: str | None = None
    binder_launch_host: str | None = None
    binder_request: str | None = None
    binder_persistent_request: str | None = None
    binder_client_ip: str | None = None
    dropped: tuple[str, ...] = field(default=(), compare=False)

    @property
    def from_binderhub(self) -> bool:
        """True for a launch with BinderHub's resolved repository and commit."""
        return self.binder_persistent_request is not None

    def as_user_options(self) -> dict:
        """The plain dict that replaces the launch's ``user_options``."""
        return {
            key: getattr(self, key)
            for key in BINDERHUB_KEYS
            if getattr(self, key) is not None
        }

    def env(self) -> dict:
        """The notebook's ``BINDER_*`` variables (never the launch token)."""
        return {
            name: getattr(self, key)
            for key, name in ENV_OF.items()
            if getattr(self, key) is not None
        }


def _refuse(key: str, why: str, **fields) -> LaunchOptionsError:
    return LaunchOptionsError(
        f"The launch option {key!r} {why}. Launch the repository from the "
        "BinderHub page; if you did, send this message to the hub admins.",
        key=key,
        **fields,
    )


def _check_url(key: str, value: str) -> None:
    if not _URL_CHARS.fullmatch(value):
        raise _refuse(key, "contains spaces, quotes or characters a URL cannot hold")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refuse(key, "must be an http:// or https:// URL")


def _check_value(key: str, value: str) -> None:
    """Refuse a value that is not of its key's form."""
    if key == "image":
        if not _IMAGE.fullmatch(value):
            raise _refuse(
                key, "is not an image reference such as registry.example.edu/img:tag"
            )
    elif key in ("repo_url", "binder_ref_url", "binder_launch_host"):
        _check_url(key, value)
    elif key in ("binder_request", "binder_persistent_request"):
        if not _REQUEST.fullmatch(value):
            raise _refuse(key, "is not a BinderHub request such as v2/gh/org/repo/HEAD")
    elif key == "token":
        if not _TOKEN.fullmatch(value):
            raise _refuse(key, "is not a BinderHub launch token")
    elif key == "binder_client_ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise _refuse(key, "is not an IP address") from None
        if "%" in value:  # an IPv6 scope: any text, and no client sends one
            raise _refuse(key, "names an IPv6 scope (%...); send the address only")


def _kind(value) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


def image_allowed(image: str, allowed: list[str]) -> bool:
    """Whether `image` is under one of the admins' `allowed` prefixes.

    A prefix is read on path boundaries: ``quay.io/org/`` admits every
    image under ``quay.io/org/``; ``registry.example.edu/binder/binder-``
    (BinderHub's usual image prefix) admits ``.../binder/binder-x`` but not
    ``.../binder/binder-x/y``; ``quay.io/org`` admits ``quay.io/org`` and
    ``quay.io/org-lab``, never ``quay.io/org-evil/x``: the part after the
    last ``/`` of the prefix matches only within one path component.
    """
    name = _repository(image)
    for prefix in allowed:
        if prefix.endswith("/"):
            if name.startswith(prefix):
                return True
            continue
        folder, _, stem = prefix.rpartition("/")
        head, _, last = name.rpartition("/")
        if head == folder and last.startswith(stem):
            return True
    return False


def _repository(image: str) -> str:
    """`image` without its tag and digest."""
    image = image.split("@", 1)[0]
    head, slash, last = image.rpartition("/")
    return head + slash + last.split(":", 1)[0]


def check_launch_options(options, allowed_images: list[str] | None) -> LaunchOptions:
    """The launch's ``user_options`` as validated `LaunchOptions`.

    ``allowed_images`` is the admins' list: None refuses any image from a
    launch, an empty list accepts every image. Raises `LaunchOptionsError`.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise LaunchOptionsError(
            f"The launch options must be a JSON object, not {_kind(options)}. "
            "Launch the repository from the BinderHub page.",
        )
    values, dropped = {}, []
    for key, value in options.items():
        if key not in BINDERHUB_KEYS:
            dropped.append(str(key)[:64])
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            raise _refuse(key, f"must be a string, not {_kind(value)}")
        if len(value) > BINDERHUB_KEYS[key]:
            raise _refuse(
                key, f"is {len(value)} characters long; at most {BINDERHUB_KEYS[key]}"
            )
        if value:
            _check_value(key, value)
            values[key] = value
    present = [key for key in LAUNCH_SET if key in values]
    if present and len(present) < len(LAUNCH_SET):
        missing = next(key for key in LAUNCH_SET if key not in values)
        raise _refuse(
            missing,
            f"is missing; BinderHub sends it together with {present[0]!r}",
        )
    if "image" in values:
        _check_image(values["image"], allowed_images)
    return LaunchOptions(**values, dropped=tuple(dropped))


def _check_image(image: str, allowed_images: list[str] | None) -> None:
    if allowed_images is None:
        raise LaunchOptionsError(
            f"This hub launches no images chosen at launch ({image!r}) until its "
            "admins name the allowed ones (c.HubextSpawner.allowed_images; in the "
            "Helm chart, imagePrefix). Please send this message to the hub admins.",
            image=image,
        )
    if allowed_images and not image_allowed(image, allowed_images):
        raise LaunchOptionsError(
            f"The image {image!r} is not one this hub launches. Launch the "
            "repository through the BinderHub page instead.",
            image=image,
        )
