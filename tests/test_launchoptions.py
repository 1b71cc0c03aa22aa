"""The launch-options edge: what a hostile `user_options` body can and cannot do."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubext.launchoptions import (
    BINDERHUB_KEYS,
    LaunchOptions,
    LaunchOptionsError,
    check_launch_options,
    image_allowed,
)
from tests.helpers.launch import binder_user_options

PREFIX = ["registry.example.edu/binder/"]
SHA = "a" * 40


def good(**changes):
    options = binder_user_options("physics/wave-lab", SHA)
    options.update(changes)
    return {k: v for k, v in options.items() if v is not ...}


def test_binderhub_launch_is_kept_as_sent():
    sent = good()
    options = check_launch_options(sent, PREFIX)
    assert options.from_binderhub
    assert options.as_user_options() == sent
    assert options.env() == {
        "BINDER_REPO_URL": "https://github.com/physics/wave-lab",
        "BINDER_REF_URL": f"https://github.com/physics/wave-lab/tree/{SHA}",
        "BINDER_LAUNCH_HOST": "https://binder.example.edu/",
        "BINDER_REQUEST": "v2/gh/physics/wave-lab/HEAD",
        "BINDER_PERSISTENT_REQUEST": f"v2/gh/physics/wave-lab/{SHA}",
    }


def test_generic_git_and_gitlab_requests_are_accepted():
    quoted = "https%3A%2F%2Fgit.example.edu%2Flab%2Frepo.git"
    options = check_launch_options(
        good(
            repo_url="https://git.example.edu/lab/repo.git",
            binder_ref_url="https://git.example.edu/lab/repo.git",
            binder_request=f"v2/git/{quoted}/main",
            binder_persistent_request=f"v2/git/{quoted}/{SHA}",
            binder_client_ip="2001:db8::7",
        ),
        PREFIX,
    )
    assert options.binder_persistent_request.endswith(SHA)
    gitlab = check_launch_options(
        good(binder_persistent_request=f"v2/gl/group%2Fsub%2Fproject/{SHA}"), PREFIX
    )
    assert gitlab.from_binderhub


@pytest.mark.parametrize("options", [None, {}])
def test_a_launch_without_binderhub_keys_gets_the_defaults(options):
    checked = check_launch_options(options, PREFIX)
    assert checked == LaunchOptions() and not checked.from_binderhub
    assert checked.as_user_options() == {} and checked.env() == {}


def test_unknown_keys_are_dropped_and_named():
    checked = check_launch_options(
        good(
            profile="gpu-large", namespace="kube-system", user="bob", **{"x" * 500: 1}
        ),
        PREFIX,
    )
    assert set(checked.as_user_options()) == set(good())
    assert checked.dropped[:3] == ("profile", "namespace", "user")
    assert checked.dropped[3] == "x" * 64


SECRET_REF = {"valueFrom": {"secretKeyRef": {"name": "bob-ssh-key", "key": "ssh.priv"}}}

# (changes to a good BinderHub body, key named in the message, phrase in it)
REFUSED = [
    (
        {"binder_request": SECRET_REF},
        "binder_request",
        "must be a string, not an object",
    ),
    (
        {"binder_launch_host": {"name": "LD_PRELOAD", "value": "/evil.so"}},
        "binder_launch_host",
        "must be a string, not an object",
    ),
    (
        {"repo_url": "A" * 200_000},
        "repo_url",
        "is 200000 characters long; at most 2048",
    ),
    ({"image": ["registry.example.edu/binder/x"]}, "image", "not a list"),
    ({"binder_client_ip": 127001}, "binder_client_ip", "not a number"),
    ({"token": True}, "token", "not true/false"),
    ({"binder_client_ip": "localhost"}, "binder_client_ip", "is not an IP address"),
    ({"binder_client_ip": "::1%\n{x}"}, "binder_client_ip", "names an IPv6 scope"),
    ({"binder_client_ip": "fe80::1%eth0"}, "binder_client_ip", "names an IPv6 scope"),
    ({"repo_url": "file:///etc/passwd"}, "repo_url", "http:// or https:// URL"),
    (
        {"repo_url": "git@github.com:physics/wave-lab"},
        "repo_url",
        "http:// or https://",
    ),
    (
        {"binder_ref_url": "https://x/\nSet-Cookie: a"},
        "binder_ref_url",
        "spaces, quotes",
    ),
    ({"binder_launch_host": "javascript:alert(1)"}, "binder_launch_host", "http://"),
    ({"binder_request": "v2/gh/a b/HEAD"}, "binder_request", "v2/gh/org/repo/HEAD"),
    (
        {"binder_persistent_request": "{x}"},
        "binder_persistent_request",
        "BinderHub request",
    ),
    (
        {"binder_persistent_request": "v2/gh/a/{{c}}"},
        "binder_persistent_request",
        "v2/",
    ),
    ({"image": "Registry.example.edu/binder/X:1"}, "image", "not an image reference"),
    (
        {"image": "registry.example.edu/binder/x:" + "t" * 129},
        "image",
        "image reference",
    ),
    ({"image": "registry.example.edu/binder/x;rm -rf"}, "image", "image reference"),
    ({"token": "a b"}, "token", "is not a BinderHub launch token"),
    ({"image": ...}, "image", "is missing; BinderHub sends it together"),
    ({"repo_url": ...}, "repo_url", "is missing"),
    ({"repo_url": None}, "repo_url", "is missing"),
]


@pytest.mark.parametrize("changes, key, phrase", REFUSED)
def test_malformed_options_are_refused_naming_the_key(changes, key, phrase):
    with pytest.raises(LaunchOptionsError) as info:
        check_launch_options(good(**changes), PREFIX)
    message = info.value.message
    assert f"The launch option {key!r}" in message and phrase in message
    assert info.value.fields["key"] == key
    assert len(message) < 400  # never echoes a huge value


def test_partial_binderhub_set_without_the_commit_is_refused():
    with pytest.raises(LaunchOptionsError, match="'binder_persistent_request' is"):
        check_launch_options(
            {"image": "registry.example.edu/binder/x:1"}
            | {"repo_url": "https://github.com/a/b"},
            PREFIX,
        )


@pytest.mark.parametrize("body", [[1, 2], "image", 7])
def test_a_body_that_is_not_an_object_is_refused(body):
    with pytest.raises(LaunchOptionsError, match="must be a JSON object"):
        check_launch_options(body, PREFIX)


def test_image_outside_the_allowed_prefixes_is_refused():
    with pytest.raises(LaunchOptionsError, match="is not one this hub launches"):
        check_launch_options(good(image="quay.io/evil/x:" + SHA), PREFIX)


def test_no_allowed_images_setting_refuses_every_image():
    with pytest.raises(LaunchOptionsError, match="c.HubextSpawner.allowed_images"):
        check_launch_options(good(), None)
    # ... but a launch naming no image still gets the defaults
    assert check_launch_options({}, None) == LaunchOptions()


def test_an_empty_allowed_list_accepts_any_image():
    checked = check_launch_options(good(image=f"quay.io/anyone/anything:{SHA}"), [])
    assert checked.image == f"quay.io/anyone/anything:{SHA}"


def test_an_image_alone_is_refused():
    """Without the launch it was built for, a REST launch could run any
    image under the prefix, another user's private repository's included."""
    with pytest.raises(LaunchOptionsError, match="'binder_persistent_request' is"):
        check_launch_options({"image": f"registry.example.edu/binder/x:{SHA}"}, PREFIX)


@pytest.mark.parametrize(
    "image, prefixes, allowed",
    [
        ("quay.io/org/x:1", ["quay.io/org/"], True),
        ("quay.io/org/a/b:1", ["quay.io/org/"], True),
        ("quay.io/org-evil/x:1", ["quay.io/org/"], False),
        ("quay.io/org-evil/x:1", ["quay.io/org"], False),
        ("quay.io/org:1", ["quay.io/org"], True),
        ("quay.io/org/x", ["quay.io/org"], False),
        ("reg.edu/binder/binder-abc:1", ["reg.edu/binder/binder-"], True),
        ("reg.edu/binder/binder-abc/x:1", ["reg.edu/binder/binder-"], False),
        ("reg.edu/binder/other:1", ["reg.edu/binder/binder-"], False),
        ("reg.edu/binder-x/binder-abc:1", ["reg.edu/binder/binder-"], False),
        ("reg.edu.evil.com/binder/binder-a:1", ["reg.edu/binder/binder-"], False),
        ("reg.edu:5000/binder/binder-a:1", ["reg.edu/binder/binder-"], False),
        ("reg.edu:5000/b/x@sha256:" + "0" * 64, ["reg.edu:5000/b/"], True),
        # the tag is never part of the match
        ("reg.edu/binder/x:binder-1", ["reg.edu/binder/x:binder-"], False),
        ("quay.io/b:1", ["quay.io/a/", "quay.io/b"], True),
    ],
)
def test_image_prefixes_match_on_path_boundaries(image, prefixes, allowed):
    assert image_allowed(image, prefixes) is allowed


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(BINDERHUB_KEYS)) | st.text(max_size=20), json_values
    )
)
def test_whatever_the_body_only_plain_bounded_strings_come_out(body):
    try:
        checked = check_launch_options(body, [])
    except LaunchOptionsError as e:
        assert e.fields["key"] in BINDERHUB_KEYS
        return
    out = checked.as_user_options()
    assert set(out) <= set(BINDERHUB_KEYS)
    for key, value in out.items():
        assert type(value) is str and 0 < len(value) <= BINDERHUB_KEYS[key]
        assert value.isprintable() and "{" not in value
    json.dumps(out)
