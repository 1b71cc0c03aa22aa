"""Per-user names: an adversarial table, validity, and no two users sharing."""

import hashlib
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubext import names
from hubext.errors import UserFacingError

# Written out independently of hubext.names (RFC 1123, as the API server checks).
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN_PART = DNS_LABEL

A48 = "a" * 48
A49 = "a" * 49
A300 = "a" * 300

# username -> the slug every per-user name is built from
TABLE = [
    ("alice", "alice"),
    ("Alice", "alice---3bc51062"),
    ("ALICE", "alice---e7dcee3c"),
    ("a.b", "a-b---2e7336dc"),
    ("a-b", "a-b"),
    ("a_b", "a-b---648fa9b3"),
    ("a b", "a-b---c8687a08"),
    ("a--b", "a-b---90827a2e"),
    ("a-2eb", "a-2eb"),  # what the legacy escaping makes of "a.b"
    ("1abc", "x-1abc---57cb980e"),
    ("x-1abc", "x-1abc"),
    ("-alice", "alice---69940822"),
    ("alice-", "alice---e2c101bb"),
    ("ü", "x---607474ca"),
    ("Ünïcødé", "n-c-d---bef14f67"),
    ("用户", "x---0d0e1a86"),
    (A48, A48),
    (A49, "a" * 37 + "---8f9bec6a"),
    (A300, "a" * 37 + "---9835fa6b"),
    ("alice@example.org", "alice-example-org---7a64adf2"),
    ("alice/../bob", "alice-bob---7592b778"),
    ("{username}", "username---efd66a42"),
    ("x", "x"),
    ("a.b.c", "a-b-c---845e3044"),
]


def is_dns_subdomain(name):
    return len(name) <= 253 and all(
        DNS_SUBDOMAIN_PART.match(p) for p in name.split(".")
    )


@pytest.mark.parametrize("username, slug", TABLE)
def test_adversarial_table(username, slug):
    assert names.user_slug(username) == slug
    assert names.pvc_name(username) == f"{slug}-nfs-pvc"
    assert names.ssh_secret_name(username) == f"{slug}-ssh-key"
    assert names.home_volume_path(username) == f"/home/{slug}-nfs-pvc"


@pytest.mark.parametrize("username, slug", TABLE)
def test_hash_suffix_is_sha256_of_the_original_username(username, slug):
    if "---" in slug:
        digest = hashlib.sha256(username.encode()).hexdigest()[:8]
        assert slug.endswith("---" + digest)
    else:
        assert slug == username  # valid names pass unchanged


def test_table_never_shares_a_name():
    slugs = [slug for _, slug in TABLE]
    assert len(set(slugs)) == len(TABLE)


def test_exhaustive_small_alphabet_never_collides():
    """Every string of up to 4 characters over an alphabet chosen to collide
    once stripped: case, dots, dashes, underscores, digits, non-ASCII."""
    alphabet = "aA.-_1ü"
    usernames = [
        "".join(p) for n in range(1, 5) for p in itertools.product(alphabet, repeat=n)
    ]
    pvcs = {names.pvc_name(u) for u in usernames}
    secrets = {names.ssh_secret_name(u) for u in usernames}
    paths = {names.home_volume_path(u) for u in usernames}
    assert len(usernames) == 7 + 49 + 343 + 2401
    assert len(pvcs) == len(secrets) == len(paths) == len(usernames)


usernames = st.text(
    alphabet=st.sampled_from("abAB.-_ 1@ü用")
    | st.characters(exclude_categories=["Cs"]),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(st.sets(usernames, min_size=2, max_size=60))
def test_distinct_usernames_never_share_names(users):
    for kind in (names.pvc_name, names.ssh_secret_name, names.home_volume_path):
        produced = [kind(u) for u in users]
        assert len(set(produced)) == len(users), kind.__name__


@settings(max_examples=300, deadline=None)
@given(usernames)
def test_every_name_is_valid_for_kubernetes(username):
    slug = names.user_slug(username)
    assert DNS_LABEL.match(slug) and len(slug) <= 48
    for name in (names.pvc_name(username), names.ssh_secret_name(username)):
        assert DNS_LABEL.match(name), name  # even a label, so usable anywhere
        assert is_dns_subdomain(name)
    path = names.home_volume_path(username)
    assert path == f"/home/{slug}-nfs-pvc"
    # label values: 63 characters, alphanumeric ends
    for value in names.user_labels(username).values():
        assert len(value) <= 63 and re.match(
            r"^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$", value
        )
    assert names.owner_annotations(username) == {"hubext/username": username}


def test_custom_templates():
    assert names.pvc_name("Alice", "claim-{username}") == "claim-alice---3bc51062"
    assert names.ssh_secret_name("bob", "ssh.{username}") == "ssh.bob"
    assert names.home_volume_path("bob", "/mnt/data/{username}") == "/mnt/data/bob"


@pytest.mark.parametrize(
    "call, template, words",
    [
        (names.pvc_name, "shared-nfs-pvc", "no '{username}'"),
        (names.pvc_name, "{username}_pvc", "not a valid Kubernetes name"),
        (names.pvc_name, "{username}-{servername}", "'servername'"),
        (names.pvc_name, "X-{username}", "lowercase"),
        (names.ssh_secret_name, "{username}-" + "k" * 250, "253 characters"),
        (names.home_volume_path, "home/{username}", "absolute path"),
        (names.home_volume_path, "/home/../{username}", "'..'"),
        (names.home_volume_path, "/home//{username}", "empty parts"),
    ],
)
def test_bad_templates_name_the_template(call, template, words):
    with pytest.raises(ValueError) as info:
        call("alice", template)
    assert repr(template) in str(info.value)
    assert words in str(info.value)


def test_non_string_username_is_refused():
    with pytest.raises(TypeError, match="username must be a str"):
        names.user_slug(42)


def test_username_that_is_not_unicode_text_is_refused():
    with pytest.raises(ValueError, match="lone surrogate"):
        names.pvc_name("a\ud800b")


def test_check_owner():
    meta = {"annotations": {"hubext/username": "Alice"}}
    names.check_owner("storage volume", "x", meta, "Alice")
    with pytest.raises(UserFacingError) as info:
        names.check_owner("storage volume", "x", meta, "alice")
    assert info.value.fields["owner"] == "Alice"
    assert "Alice" not in info.value.message  # never tell one user another's name
    # an object nobody is recorded on is nobody's to take: the admins adopt it
    for unowned in ({"annotations": None}, {}, {"annotations": {"other": "x"}}):
        with pytest.raises(UserFacingError) as info:
            names.check_owner("storage volume", "x", unowned, "alice")
        assert "not recorded as belonging to any account" in info.value.message
        assert info.value.fields["owner"] is None
