"""The `.resources` parser and the site policy: tables of files and properties."""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubext.errors import UserFacingError
from hubext.resources import (
    DEFAULT_MAXIMA,
    GIB,
    KEYS,
    MAX_FILE_BYTES,
    ResourceFileError,
    ResourcePolicy,
    Resources,
    cpu_quantity,
    granted_line,
    memory_quantity,
    parse_resources,
)

# A site with two GPUs per server; otherwise the built-in policy.
GPU_SITE = ResourcePolicy.from_dict({"maxima": {"gpu": 2}})
DEFAULTS = (0, 1.0, 8.0, 1.0, 16.0)

VALID = [
    # (file bytes, expected gpu, cpur, cpul, memr, meml)
    (b"", DEFAULTS),
    (b"# only a comment\n\n   \n", DEFAULTS),
    (b"gpu=1\ncpur=2\ncpul=4\nmemr=4\nmeml=8\n", (1, 2.0, 4.0, 4.0, 8.0)),
    (
        b"# lines starting with # are ignored\n"
        b"gpu=1      # GPUs (integer, default 0)\n"
        b"cpur=2     # CPU request (cores, default 1)\n"
        b"cpul=4     # CPU limit (cores, default 8)\n"
        b"memr=4     # RAM request in GB, no units (default 1)\n"
        b"meml=8     # RAM limit in GB, no units (default 16)\n",
        (1, 2.0, 4.0, 4.0, 8.0),
    ),
    (b"memr=4", (0, 1.0, 8.0, 4.0, 16.0)),
    (b"\xef\xbb\xbfcpur = 0.5\r\nmeml =\t2 \r\n", (0, 0.5, 8.0, 1.0, 2.0)),
    (b"cpur=2\rcpul=2\r", (0, 2.0, 2.0, 1.0, 16.0)),
    (b"  memr=0.5  \n", (0, 1.0, 8.0, 0.5, 16.0)),
    (b"memr=.25\nmeml=16.\n", (0, 1.0, 8.0, 0.25, 16.0)),
    (b"cpur=0.001\n#=x\nmemr=2#tight comment\n", (0, 0.001, 8.0, 2.0, 16.0)),
    (b"cpur=0.001\nmemr=0.0009765625\n", (0, 0.001, 8.0, 1 / 1024, 16.0)),
    (b"gpu=0\n", DEFAULTS),
    (b"gpu=2\n", (2, 1.0, 8.0, 1.0, 16.0)),
    (b"memr=16\n", (0, 1.0, 8.0, 16.0, 16.0)),
    (b"cpur=32\ncpul=32\nmemr=256\nmeml=256\n", (0, 32.0, 32.0, 256.0, 256.0)),
    (b"memr=+3\nmeml=007\n", (0, 1.0, 8.0, 3.0, 7.0)),
]


@pytest.mark.parametrize("data, expected", VALID)
def test_valid_files(data, expected):
    result = parse_resources(data, GPU_SITE)
    assert tuple(result.as_dict().values()) == expected
    assert tuple(result.as_dict()) == KEYS


def test_missing_file_means_defaults():
    assert parse_resources(None) == Resources(0, 1, 8, 1, 16)
    site = ResourcePolicy.from_dict({"defaults": {"memr": 2, "meml": 4}})
    assert parse_resources(None, site).as_dict() == {
        "gpu": 0,
        "cpur": 1.0,
        "cpul": 8.0,
        "memr": 2.0,
        "meml": 4.0,
    }
    assert parse_resources(b"memr=3", site).meml == 4.0


INVALID = [
    # (file bytes, line, key, message)
    (b"memr=4G", 1, "memr", "memr=4G: write memr=4 (a number of GB, without units)"),
    (b"meml=4GB", 1, "meml", "meml=4GB: write meml=4 (a number of GB, without units)"),
    (
        b"memr = 4Gi",
        1,
        "memr",
        "memr=4Gi: write memr=4 (a number of GB, without units)",
    ),
    (
        b"memr=512Mi",
        1,
        "memr",
        "memr=512Mi: write memr=0.5 (a number of GB, without units)",
    ),
    (b"meml=1T", 1, "meml", "meml=1T: write meml=1024 (a number of GB, without units)"),
    (
        b"memr=4 X",
        1,
        "memr",
        "memr=4 X: write a number of GB, without units, such as memr=4",
    ),
    (
        b"cpur=500m",
        1,
        "cpur",
        "cpur=500m: write cpur=0.5 (a number of cores, without units)",
    ),
    (
        b"cpul=2cores",
        1,
        "cpul",
        "cpul=2cores: write cpul=2 (a number of cores, without units)",
    ),
    (
        b"gpu=1gpu",
        1,
        "gpu",
        "gpu=1gpu: write gpu=1 (a whole number of GPUs, without units)",
    ),
    (
        b"# mine\nmem=4",
        2,
        "mem",
        'mem=4: unknown key "mem"; did you mean memr? write memr=4;'
        " the keys are gpu, cpur, cpul, memr, meml",
    ),
    (
        b"GPU=1",
        1,
        "GPU",
        'GPU=1: unknown key "GPU"; did you mean gpu? write gpu=1;'
        " the keys are gpu, cpur, cpul, memr, meml",
    ),
    (
        b"disk=10",
        1,
        "disk",
        'disk=10: unknown key "disk"; the keys are gpu, cpur, cpul, memr, meml',
    ),
    (
        b"memr=1\nmeml=2\nmemr=2\n",
        3,
        "memr",
        "memr=2: memr is already set on line 1; keep only one memr line",
    ),
    (
        b"memr 4",
        1,
        "memr",
        'memr 4: no "=" in this line; write key=value, memr=4,'
        " or start the line with # to make it a comment",
    ),
    (
        b"memr: 4",
        1,
        "memr",
        'memr: 4: no "=" in this line; write key=value, memr=4,'
        " or start the line with # to make it a comment",
    ),
    (
        b"\nhello\n",
        2,
        None,
        'hello: no "=" in this line; write key=value, such as memr=4,'
        " or start the line with # to make it a comment",
    ),
    (
        b"=4",
        1,
        None,
        '=4: no key before "="; start the line with one of'
        " gpu, cpur, cpul, memr, meml, such as memr=4",
    ),
    (
        b"memr=",
        1,
        "memr",
        "memr=: no value; write a number of GB, such as memr=4, or remove the line",
    ),
    (
        b"cpur=two",
        1,
        "cpur",
        'cpur=two: "two" is not a number; write a number of cores, such as cpur=2',
    ),
    (
        b"memr=1e3",
        1,
        "memr",
        'memr=1e3: "1e3" is not a number; write a number of GB, such as memr=4',
    ),
    (
        b"memr=1,5",
        1,
        "memr",
        'memr=1,5: "1,5" is not a number; write a number of GB, such as memr=4',
    ),
    (b"cpul=nan", 1, "cpul", "cpul=nan: write a finite number, such as cpul=4"),
    (b"meml=inf", 1, "meml", "meml=inf: write a finite number, such as meml=8"),
    (
        b"cpur=-Infinity",
        1,
        "cpur",
        "cpur=-Infinity: write a finite number, such as cpur=2",
    ),
    (
        b"memr=-1",
        1,
        "memr",
        "memr=-1: must not be negative; write memr=4, or remove the line for the default (1)",
    ),
    (
        b"meml=0",
        1,
        "meml",
        "meml=0: a limit must be above 0; write meml=8, or remove the line for the default (16)",
    ),
    (
        b"cpur=0",
        1,
        "cpur",
        "cpur=0: a request must be above 0 (with no request Kubernetes reserves"
        " the whole limit); write cpur=0.1 for a small request, or remove the"
        " line for the default (1)",
    ),
    (
        b"# tiny\nmemr=0.000\n",
        2,
        "memr",
        "memr=0.000: a request must be above 0 (with no request Kubernetes"
        " reserves the whole limit); write memr=0.25 for a small request, or"
        " remove the line for the default (1)",
    ),
    (
        b"cpul=0.0",
        1,
        "cpul",
        "cpul=0.0: a limit must be above 0; write cpul=4, or remove the line for the default (8)",
    ),
    (b"gpu=0.5", 1, "gpu", "gpu=0.5: GPUs come whole; write gpu=0 or gpu=1"),
    (b"gpu=1.5", 1, "gpu", "gpu=1.5: GPUs come whole; write gpu=1 or gpu=2"),
    (
        b"memr=0.1",
        1,
        "memr",
        "memr=0.1: must be in steps of 1/1024 GB (1 MiB); write memr=0.125",
    ),
    (
        b"cpur=0.0005",
        1,
        "cpur",
        "cpur=0.0005: must be in steps of 0.001 cores (1 millicore); write cpur=0.001",
    ),
    (
        b"gpu=3",
        1,
        "gpu",
        "gpu=3: above this hub's maximum of 2 GPUs; write gpu=2 or less",
    ),
    (
        b"meml=512",
        1,
        "meml",
        "meml=512: above this hub's maximum of 256 GB; write meml=256 or less",
    ),
    (
        b"cpul=33\n",
        1,
        "cpul",
        "cpul=33: above this hub's maximum of 32 cores; write cpul=32 or less",
    ),
    (
        b"memr=" + b"9" * 400,
        1,
        "memr",
        "memr=9999999999999999999999999999999999999...:"
        " above this hub's maximum of 256 GB; write memr=256 or less",
    ),
    (
        b"memr=32\nmeml=16\n",
        1,
        "memr",
        "memr=32: the request is above the limit meml=16 on line 2;"
        " lower memr or raise meml to at least 32",
    ),
    (
        b"# big\nmemr=32\n",
        2,
        "memr",
        "memr=32: the request is above the default limit meml=16;"
        " add the line meml=32 (or more) to raise the limit",
    ),
    (
        b"cpur=12\n",
        1,
        "cpur",
        "cpur=12: the request is above the default limit cpul=8;"
        " add the line cpul=12 (or more) to raise the limit",
    ),
    (
        b"cpul=0.5\n",
        1,
        "cpul",
        "cpul=0.5: the limit is below the default request cpur=1; add the line"
        " cpur=0.5 (or less) to lower the request, or raise cpul to at least 1",
    ),
    (
        b"memr=1\n\xff\xfe",
        2,
        None,
        "not UTF-8 text (byte 0xff); save the file as UTF-8 (plain text)",
    ),
    (
        b"\xff\xfem\x00e\x00",
        1,
        None,
        "the file is saved as UTF-16; save it as UTF-8 (plain text)",
    ),
    (
        b"memr=1\r\nmeml=2\r\n\x00\x01",
        3,
        None,
        "contains a NUL byte, so this looks like a binary file;"
        " .resources must be plain text lines such as memr=4",
    ),
    (
        b"memr=\x1b[31m",
        1,
        "memr",
        'memr=\\x1b[31m: "\\x1b[31m" is not a number; write a number of GB,'
        " such as memr=4",
    ),
    (  # off the step: the suggestion would be a float too large to print
        b"cpur=1" + b"0" * 400 + b".0001\n",
        1,
        "cpur",
        "cpur=1000000000000000000000000000000000000...: above this hub's"
        " maximum of 32 cores; write cpur=32 or less",
    ),
    (  # a value with a unit, too large to suggest without it
        b"memr=" + b"9" * 400 + b"G\n",
        1,
        "memr",
        "memr=9999999999999999999999999999999999999...: write a number of GB,"
        " without units, such as memr=4",
    ),
    (  # the unit's conversion is too large to write plainly: no suggestion
        b"meml=999999999999999T\n",
        1,
        "meml",
        "meml=999999999999999T: write a number of GB, without units, such as meml=8",
    ),
    (
        b"# pad\n" * 700,
        None,
        None,
        "the file is larger than 4096 bytes; a .resources file needs only"
        " a few short lines such as memr=4",
    ),
]


@pytest.mark.parametrize("data, line, key, reason", INVALID)
def test_invalid_files(data, line, key, reason):
    with pytest.raises(ResourceFileError) as info:
        parse_resources(data, GPU_SITE)
    error = info.value
    assert isinstance(error, UserFacingError)
    assert (error.filename, error.line, error.key, error.reason) == (
        ".resources",
        line,
        key,
        reason,
    )
    where = f".resources line {line}" if line else ".resources"
    assert error.message == str(error) == f"{where}: {reason}"
    assert error.fields["line"] == line and error.fields["key"] == key


def test_message_names_the_given_filename():
    with pytest.raises(ResourceFileError) as info:
        parse_resources(b"\n\nmemr=4G", filename="repo/.resources")
    assert str(info.value).startswith("repo/.resources line 3: memr=4G: ")


def test_site_without_gpus_says_so():
    with pytest.raises(ResourceFileError) as info:
        parse_resources(b"gpu=1")
    assert (
        info.value.reason
        == "gpu=1: this hub has no GPUs; write gpu=0 or remove the line"
    )


def test_request_above_default_limit_beyond_site_maximum():
    site = ResourcePolicy.from_dict({"maxima": {"memr": 64, "meml": 16}})
    with pytest.raises(ResourceFileError) as info:
        parse_resources(b"memr=32", site)
    assert info.value.reason == (
        "memr=32: the request is above the default limit meml=16;"
        " write memr=16 or less, this hub's largest meml"
    )


def test_size_cap_is_a_policy_field():
    small = ResourcePolicy(max_file_bytes=64)
    parse_resources(b"memr=2\n" + b"#" * 57, small)
    with pytest.raises(ResourceFileError, match="larger than 64 bytes"):
        parse_resources(b"memr=2\n" + b"#" * 58, small)
    assert MAX_FILE_BYTES == 4096
    parse_resources(b"#" * 4096)


# ---- conversion to KubeSpawner values -------------------------------------


def test_kubespawner_options_use_gib():
    result = parse_resources(b"gpu=1\ncpur=0.5\ncpul=2\nmemr=0.5\nmeml=4\n", GPU_SITE)
    assert result.kubespawner_options() == {
        "cpu_guarantee": 0.5,
        "cpu_limit": 2.0,
        "mem_guarantee": 512 * 1024**2,
        "mem_limit": 4 * 1024**3,
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
    }
    assert parse_resources(None).kubespawner_options()["extra_resource_limits"] == {}
    custom = result.kubespawner_options(gpu_resource="amd.com/gpu")
    assert custom["extra_resource_limits"] == {"amd.com/gpu": "1"}
    assert memory_quantity(result.mem_request_bytes) == "512Mi"
    assert memory_quantity(result.mem_limit_bytes) == "4Gi"
    assert cpu_quantity(result.cpur) == "500m"
    assert cpu_quantity(result.cpul) == "2"
    assert json.loads(json.dumps(result.as_dict())) == result.as_dict()


def test_resources_is_frozen():
    result = parse_resources(None)
    with pytest.raises(AttributeError):
        result.memr = 2
    with pytest.raises(ValueError, match="gpu must be a whole number"):
        Resources(gpu=0.5)


# ---- the site policy -------------------------------------------------------


def test_policy_from_dict_any_subset():
    policy = ResourcePolicy.from_dict(
        {"defaults": {"memr": 2}, "maxima": {"gpu": 4, "meml": 64}}
    )
    assert policy.defaults == Resources(0, 1, 8, 2, 16)
    assert policy.maxima == Resources(4, 32, 32, 256, 64)
    assert ResourcePolicy.from_dict(None) == ResourcePolicy()
    assert (
        ResourcePolicy.from_dict({}).maxima
        == DEFAULT_MAXIMA
        == Resources(0, 32, 32, 256, 256)
    )


BAD_POLICIES = [
    (
        {"defaults": {"meml": 512}},
        "defaults.meml=512 is above maxima.meml=256; lower defaults.meml or raise maxima.meml",
    ),
    (
        {"maxima": {"cpul": 4}},
        "defaults.cpul=8 is above maxima.cpul=4; lower defaults.cpul or raise maxima.cpul",
    ),
    (
        {"defaults": {"gpu": 1}},
        "defaults.gpu=1 is above maxima.gpu=0; lower defaults.gpu or raise maxima.gpu",
    ),
    (
        {"defaults": {"memr": 32}},
        "defaults.memr=32 is above defaults.meml=16; a request cannot be above its limit",
    ),
    ({"maxima": {"memx": 1}}, "unknown key maxima.memx. Did you mean maxima.memr?"),
    ({"maximum": {}}, "unknown key maximum. Did you mean maxima?"),
    ({"defaults": {"gpu": True}}, "defaults.gpu must be a whole number, not True"),
    ({"defaults": {"cpur": "2"}}, "defaults.cpur must be a number, not '2'"),
    ({"maxima": {"gpu": 1.5}}, "maxima.gpu=1.5 must be in steps of 1 GPU"),
    ({"maxima": {"meml": 0.1}}, "maxima.meml=0.1 must be in steps of 1/1024 GB"),
    ({"maxima": {"cpur": -1}}, "maxima.cpur must be a finite number of 0 or more"),
    (
        {"maxima": {"cpur": math.inf}},
        "maxima.cpur must be a finite number of 0 or more",
    ),
    (
        {"defaults": {"meml": 0}},
        "defaults.meml must be above 0; a server with a limit of 0 cannot run",
    ),
    ({"maxima": {"cpul": 0}}, "defaults.cpul=8 is above maxima.cpul=0"),
    (
        {"defaults": {"cpur": 0}},
        "defaults.cpur must be above 0; with no request Kubernetes reserves the"
        " whole limit (a small one: cpur: 0.1)",
    ),
    ({"defaults": []}, "defaults must be a mapping"),
    ({"max_file_bytes": 10}, "max_file_bytes must be a whole number of at least 64"),
    ({"gpu_resource": ""}, "gpu_resource must be a resource name"),
    ([1, 2], "resource policy must be a mapping"),
]


@pytest.mark.parametrize("data, message", BAD_POLICIES)
def test_bad_policies(data, message):
    with pytest.raises(ValueError) as info:
        ResourcePolicy.from_dict(data)
    assert message in str(info.value)


# ---- properties ------------------------------------------------------------

VALUES = [
    "0",
    "1",
    "2",
    "0.5",
    "4",
    "8",
    "16",
    "32",
    "256",
    "257",
    "1.5",
    ".25",
    "-1",
    "0.1",
    "nan",
]
MUTATIONS = [
    lambda s: s,
    lambda s: s + "G",
    lambda s: "-" + s,
    lambda s: s.replace("=", " "),
    lambda s: s.upper(),
    lambda s: s + "\x00",
    lambda s: " " + s + " # note",
    lambda s: s[:-1],
    lambda s: s + "e3",
    lambda s: s.replace("=", "==", 1),
    lambda s: "\ufeff" + s,
    lambda s: s + "\u00e9",
]


@st.composite
def near_valid_files(draw):
    """Files made of plausible lines, some of them broken on purpose."""
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        key = draw(st.sampled_from([*KEYS, *KEYS, "mem", "cpu", "#", ""]))
        line = f"{key}={draw(st.sampled_from(VALUES))}"
        if draw(st.integers(0, 3)) == 0:  # most lines stay valid
            line = draw(st.sampled_from(MUTATIONS))(line)
        lines.append(line)
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return newline.join(lines).encode("utf-8")


POLICIES = [
    ResourcePolicy(),
    GPU_SITE,
    ResourcePolicy.from_dict(
        {
            "defaults": {"cpul": 2, "meml": 4},
            "maxima": {"cpur": 2, "cpul": 4, "memr": 8, "meml": 8},
        }
    ),
]


def assert_within_policy(result: Resources, policy: ResourcePolicy):
    values, maxima = result.as_dict(), policy.maxima.as_dict()
    for key in KEYS:
        assert math.isfinite(values[key]) and 0 <= values[key] <= maxima[key], key
    assert 0 <= result.cpur <= result.cpul and result.cpul > 0
    assert 0 <= result.memr <= result.meml and result.meml > 0
    assert isinstance(result.gpu, int)
    assert result.mem_request_bytes % 1024**2 == 0
    assert result.mem_limit_bytes <= policy.maxima.meml * GIB


def check_property(data: bytes, policy: ResourcePolicy):
    try:
        result = parse_resources(data, policy)
    except ResourceFileError as error:
        assert error.reason and str(error).startswith(".resources")
        assert error.line is None or error.line >= 1
    else:
        assert_within_policy(result, policy)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=5000), st.sampled_from(POLICIES))
def test_arbitrary_bytes_only_raise_resource_file_error(data, policy):
    check_property(data, policy)


@st.composite
def spliced_files(draw):
    """A near-valid file with arbitrary bytes written over part of it."""
    data = draw(near_valid_files())
    at = draw(st.integers(0, len(data)))
    return (
        data[:at] + draw(st.binary(max_size=8)) + data[at + draw(st.integers(0, 4)) :]
    )


@settings(max_examples=400)
@given(spliced_files(), st.sampled_from(POLICIES))
def test_spliced_files_only_raise_resource_file_error(data, policy):
    check_property(data, policy)


@settings(max_examples=300)
@given(
    st.sampled_from(KEYS),
    st.from_regex(r"[0-9]{1,600}(\.[0-9]{0,600})?", fullmatch=True),
    st.sampled_from(["", "m", "G", "Ti", "cores", " gpus"]),
    st.sampled_from(POLICIES),
)
def test_numbers_of_any_length_only_raise_resource_file_error(
    key, number, unit, policy
):
    check_property(f"{key}={number}{unit}\n".encode(), policy)


@settings(max_examples=600)
@given(near_valid_files(), st.sampled_from(POLICIES))
def test_near_valid_files_stay_within_policy(data, policy):
    check_property(data, policy)


@settings(max_examples=300)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            key: st.decimals(min_value=0, max_value=300, places=3).map(str)
            for key in KEYS
        },
    ),
    st.sampled_from(POLICIES),
)
def test_accepted_numbers_are_exact(values, policy):
    """Every accepted value is the number written, converted without loss."""
    data = "".join(f"{key}={value}\n" for key, value in values.items()).encode()
    try:
        result = parse_resources(data, policy)
    except ResourceFileError:
        return
    assert_within_policy(result, policy)
    for key, value in values.items():
        assert getattr(result, key) == float(value)


@pytest.mark.parametrize(
    "data, commit, line",
    [
        (
            b"cpur=2\ncpul=4\nmemr=2\nmeml=4\n",
            "1a2b3c4d" * 5,
            "Resources from .resources at 1a2b3c4: CPU 2 (limit 4), RAM 2–4 GB, no GPU",
        ),
        (
            b"gpu=1\nmemr=0.5\n",
            "1a2b3c4d" * 5,
            "Resources from .resources at 1a2b3c4: CPU 1 (limit 8), RAM 0.5–16 GB, 1 GPU",
        ),
        (
            None,
            "1a2b3c4d" * 5,
            "Resources: site defaults, no .resources in the repository at 1a2b3c4: "
            "CPU 1 (limit 8), RAM 1–16 GB, no GPU",
        ),
        (None, None, "Resources: site defaults: CPU 1 (limit 8), RAM 1–16 GB, no GPU"),
    ],
)
def test_granted_line_says_what_and_from_where(data, commit, line):
    policy = ResourcePolicy.from_dict({"maxima": {"gpu": 2}})
    resources = parse_resources(data, policy)
    assert granted_line(resources, ".resources", commit, data is not None) == line
