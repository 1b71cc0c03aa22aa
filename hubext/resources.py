"""The `.resources` file: parse it once, apply the site policy, hand on a frozen value.

A repository asks for resources with a `.resources` file at its root::

    gpu=1      # GPUs (whole number)
    cpur=2     # CPU request, cores
    cpul=4     # CPU limit, cores
    memr=4     # RAM request, GB without units
    meml=8     # RAM limit, GB without units

Everything is checked here, at the edge: the result of `parse_resources` is
a `Resources` value that is within the site's maxima and has no request above
its limit, so nothing downstream validates again. Every problem raises
`ResourceFileError`, whose message names the file, the line, the key and how
to fix it, because the person reading it is the one launching.

Memory units: 1 GB in `.resources` is 1 GiB (1024**3 bytes) in the pod, the
same as KubeSpawner's "G" suffix. Memory must come to a whole number of MiB
(so `memr=0.5` is 512 MiB and `memr=0.1` is refused with a suggestion), and
CPU to a whole number of millicores (Kubernetes' finest CPU step).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from hubext.errors import UserFacingError

KEYS = ("gpu", "cpur", "cpul", "memr", "meml")
LIMIT_OF = {"cpur": "cpul", "memr": "meml"}
REQUEST_OF = {limit: request for request, limit in LIMIT_OF.items()}
MAX_FILE_BYTES = 4096
MIB = 1024**2
GIB = 1024**3

# What each key is, for messages: (unit phrase, example value).
#: A small request to suggest instead of 0 (the smallest are 0.001 cores
#: and 1/1024 GB).
_SMALL = {"cpur": "0.1", "memr": "0.25"}
_MEANING = {
    "gpu": ("a whole number of GPUs", "1"),
    "cpur": ("a number of cores", "2"),
    "cpul": ("a number of cores", "4"),
    "memr": ("a number of GB", "4"),
    "meml": ("a number of GB", "8"),
}
# Units people write, as a factor to the key's own unit.
_MEMORY_UNITS = {
    **dict.fromkeys(("k", "kb", "ki", "kib"), Fraction(1, 1024**2)),
    **dict.fromkeys(("m", "mb", "mi", "mib"), Fraction(1, 1024)),
    **dict.fromkeys(("g", "gb", "gi", "gib"), Fraction(1)),
    **dict.fromkeys(("t", "tb", "ti", "tib"), Fraction(1024)),
}
_CPU_UNITS = {"m": Fraction(1, 1000), "core": Fraction(1), "cores": Fraction(1)}
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_WITH_UNIT = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*([A-Za-z]+)")
_NOT_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity"}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: Values a message may suggest: above this no real request lies, and a
#: float could no longer print it as a plain number.
_SUGGESTIBLE = 10**15


def format_number(value) -> str:
    """Write a number the way a person would type it in `.resources`."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class Resources:
    """The effective resources of one server, in the file's own units.

    `gpu` is a count, `cpur`/`cpul` are cores, `memr`/`meml` are GB where
    1 GB = 1 GiB = 1024**3 bytes. The helpers below turn them into the values
    KubeSpawner takes, so the spawner never converts units itself.
    """

    gpu: int = 0
    cpur: float = 1.0
    cpul: float = 8.0
    memr: float = 1.0
    meml: float = 16.0

    def __post_init__(self):
        if isinstance(self.gpu, bool) or self.gpu != int(self.gpu):
            raise ValueError(f"Resources.gpu must be a whole number, not {self.gpu!r}")
        object.__setattr__(self, "gpu", int(self.gpu))
        for key in KEYS[1:]:
            object.__setattr__(self, key, float(getattr(self, key)))

    def as_dict(self) -> dict:
        """The five values in the file's units, e.g. for JSON output."""
        return dataclasses.asdict(self)

    @property
    def mem_request_bytes(self) -> int:
        """RAM request in bytes (memr GiB)."""
        return round(self.memr * GIB)

    @property
    def mem_limit_bytes(self) -> int:
        """RAM limit in bytes (meml GiB)."""
        return round(self.meml * GIB)

    def summary(self) -> str:
        """ "CPU 2 (limit 4), RAM 2–4 GB, no GPU": what the launch page and
        the control panel both say a server was given."""
        cpu = f"CPU {format_number(self.cpur)} (limit {format_number(self.cpul)})"
        ram = f"RAM {format_number(self.memr)}–{format_number(self.meml)} GB"
        gpu = {0: "no GPU", 1: "1 GPU"}.get(self.gpu, f"{self.gpu} GPUs")
        return f"{cpu}, {ram}, {gpu}"

    def kubespawner_options(self, gpu_resource: str = "nvidia.com/gpu") -> dict:
        """Values for the KubeSpawner traits of the same names.

        Memory goes as whole bytes (KubeSpawner's "G" is also 1024**3), CPU
        as float cores, GPUs as an extended resource limit, omitted at 0.
        """
        gpus = {gpu_resource: str(self.gpu)} if self.gpu else {}
        return {
            "cpu_guarantee": self.cpur,
            "cpu_limit": self.cpul,
            "mem_guarantee": self.mem_request_bytes,
            "mem_limit": self.mem_limit_bytes,
            "extra_resource_limits": gpus,
        }


def granted_line(
    resources: Resources, filename: str, commit: str | None, found: bool
) -> str:
    """The launch page's line on what the server was given, and from where.

    `commit` is None for a launch that did not come from a repository (the
    REST API, the control panel); `found` says whether the commit has the
    file.
    """
    if commit is None:
        return f"Resources: site defaults: {resources.summary()}"
    if not found:
        return (
            f"Resources: site defaults, no {filename} in the repository at "
            f"{commit[:7]}: {resources.summary()}"
        )
    return f"Resources from {filename} at {commit[:7]}: {resources.summary()}"


def memory_quantity(n_bytes: int) -> str:
    """A Kubernetes quantity for a whole number of MiB: '4Gi', '512Mi'."""
    if n_bytes % GIB == 0:
        return f"{n_bytes // GIB}Gi"
    if n_bytes % MIB == 0:
        return f"{n_bytes // MIB}Mi"
    return str(n_bytes)


def cpu_quantity(cores: float) -> str:
    """A Kubernetes quantity for CPU cores: '2', '500m'."""
    millicores = round(cores * 1000)
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


DEFAULT_DEFAULTS = Resources(gpu=0, cpur=1, cpul=8, memr=1, meml=16)
DEFAULT_MAXIMA = Resources(gpu=0, cpur=32, cpul=32, memr=256, meml=256)


class ResourceFileError(UserFacingError):
    """A `.resources` file that cannot be used, with a message for its author.

    `message` is the whole sentence shown on the launch page; `reason` is the
    same without the "FILE line N:" prefix, for tools that print their own
    location (the CLI prints `PATH:LINE: reason`).
    """

    def __init__(self, reason: str, filename: str, line: int | None, key=None):
        where = f"{filename} line {line}" if line else filename
        super().__init__(
            f"{where}: {reason}", filename=filename, line=line, key=key, reason=reason
        )
        self.filename = filename
        self.line = line
        self.key = key
        self.reason = reason


_STEP = {
    "gpu": (Fraction(1), "steps of 1 GPU"),
    "cpur": (Fraction(1, 1000), "steps of 0.001 cores (1 millicore)"),
    "cpul": (Fraction(1, 1000), "steps of 0.001 cores (1 millicore)"),
    "memr": (Fraction(1, 1024), "steps of 1/1024 GB (1 MiB)"),
    "meml": (Fraction(1, 1024), "steps of 1/1024 GB (1 MiB)"),
}


def _on_step(key: str, value) -> bool:
    """Whether a value is a whole number of the key's finest step."""
    return (Fraction(value) / _STEP[key][0]).denominator == 1


def _check_value(key: str, value, where: str) -> None:
    """Raise ValueError if a policy value could never appear in a valid file."""
    kind = "a whole number" if key == "gpu" else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be {kind}, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} must be a finite number of 0 or more, not {value}")
    if not _on_step(key, value):
        raise ValueError(f"{where}={value} must be in {_STEP[key][1]}")


def _policy_section(data: Mapping, section: str, base: Resources) -> Resources:
    """Merge one section (`defaults` or `maxima`) of a policy dict over `base`."""
    given = data.get(section)
    given = {} if given is None else given
    if not isinstance(given, Mapping):
        raise ValueError(f"resource policy: {section} must be a mapping of key: number")
    for key, value in given.items():
        if key not in KEYS:
            hint = difflib.get_close_matches(str(key), KEYS, n=1)
            maybe = f" Did you mean {section}.{hint[0]}?" if hint else ""
            raise ValueError(
                f"resource policy: unknown key {section}.{key}.{maybe}"
                f" The keys are {', '.join(KEYS)}."
            )
        _check_value(key, value, f"resource policy: {section}.{key}")
    return Resources(**{**base.as_dict(), **given})


@dataclass(frozen=True)
class ResourcePolicy:
    """What a site allows: defaults for missing lines and a maximum per key.

    Build it from the admin's YAML/dict with `ResourcePolicy.from_dict`, e.g.
    ``{"defaults": {"memr": 2}, "maxima": {"gpu": 2, "meml": 64}}``. The
    default maxima (gpu 0, cores 32, GB 256) suit a cluster without GPUs;
    `maxima.gpu: 0` means "this hub has no GPUs". Inconsistent settings raise
    ValueError naming both settings, so a bad policy fails at hub start.
    """

    defaults: Resources = DEFAULT_DEFAULTS
    maxima: Resources = DEFAULT_MAXIMA
    max_file_bytes: int = MAX_FILE_BYTES
    gpu_resource: str = "nvidia.com/gpu"

    def __post_init__(self):
        for key in KEYS:
            for section in ("defaults", "maxima"):
                value = getattr(getattr(self, section), key)
                _check_value(key, value, f"resource policy: {section}.{key}")
            default, maximum = getattr(self.defaults, key), getattr(self.maxima, key)
            if default > maximum:
                raise ValueError(
                    f"resource policy: defaults.{key}={format_number(default)} is"
                    f" above maxima.{key}={format_number(maximum)}; lower"
                    f" defaults.{key} or raise maxima.{key}"
                )
        for limit in REQUEST_OF:  # maxima are at least the defaults, so also > 0
            if getattr(self.defaults, limit) <= 0:
                raise ValueError(
                    f"resource policy: defaults.{limit} must be above 0;"
                    " a server with a limit of 0 cannot run"
                )
        for request in LIMIT_OF:
            if getattr(self.defaults, request) <= 0:
                raise ValueError(
                    f"resource policy: defaults.{request} must be above 0; with no"
                    " request Kubernetes reserves the whole limit (a small one:"
                    f" {request}: {_SMALL[request]})"
                )
        for request, limit in LIMIT_OF.items():
            r, lim = getattr(self.defaults, request), getattr(self.defaults, limit)
            if r > lim:
                raise ValueError(
                    f"resource policy: defaults.{request}={format_number(r)} is above"
                    f" defaults.{limit}={format_number(lim)}; a request cannot be"
                    f" above its limit"
                )
        if (
            isinstance(self.max_file_bytes, bool)
            or not isinstance(self.max_file_bytes, int)
            or self.max_file_bytes < 64
        ):
            raise ValueError(
                f"resource policy: max_file_bytes must be a whole number of at"
                f" least 64, not {self.max_file_bytes!r}"
            )
        if not isinstance(self.gpu_resource, str) or not self.gpu_resource:
            raise ValueError(
                "resource policy: gpu_resource must be a resource name such as nvidia.com/gpu"
            )

    def as_dict(self) -> dict:
        """The policy in the form `from_dict` takes (and a `--policy` file)."""
        return {
            "defaults": self.defaults.as_dict(),
            "maxima": self.maxima.as_dict(),
            "max_file_bytes": self.max_file_bytes,
            "gpu_resource": self.gpu_resource,
        }

    @classmethod
    def from_dict(cls, data: Mapping | None) -> ResourcePolicy:
        """Build a policy from `{defaults: {...}, maxima: {...}}`, any subset."""
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ValueError(
                "resource policy must be a mapping with the keys defaults and maxima,"
                " e.g. {defaults: {memr: 1}, maxima: {meml: 64}}"
            )
        known = ("defaults", "maxima", "max_file_bytes", "gpu_resource")
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                maybe = f" Did you mean {hint[0]}?" if hint else ""
                raise ValueError(
                    f"resource policy: unknown key {key}.{maybe}"
                    f" The keys are {', '.join(known)}."
                )
        return cls(
            defaults=_policy_section(data, "defaults", DEFAULT_DEFAULTS),
            maxima=_policy_section(data, "maxima", DEFAULT_MAXIMA),
            max_file_bytes=data.get("max_file_bytes", MAX_FILE_BYTES),
            gpu_resource=data.get("gpu_resource", "nvidia.com/gpu"),
        )


def _show(text: str, width: int = 40) -> str:
    """User text quoted back safely: short, with control characters escaped."""
    if len(text) > width:
        text = text[: width - 3] + "..."
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _line_of(data: bytes, position: int) -> int:
    """The 1-based line holding byte `position`, counting CR, LF and CRLF breaks."""
    return len(_LINE_BREAK.split(data[:position].decode("utf-8", "replace")))


def _decode(data: bytes, policy: ResourcePolicy, filename: str) -> str:
    """Bytes to text, refusing oversized, binary and non-UTF-8 files."""
    if len(data) > policy.max_file_bytes:
        raise ResourceFileError(
            f"the file is larger than {policy.max_file_bytes} bytes; a .resources"
            " file needs only a few short lines such as memr=4",
            filename,
            None,
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ResourceFileError(
            "the file is saved as UTF-16; save it as UTF-8 (plain text)", filename, 1
        )
    nul = data.find(b"\0")
    if nul >= 0:
        raise ResourceFileError(
            "contains a NUL byte, so this looks like a binary file; .resources"
            " must be plain text lines such as memr=4",
            filename,
            _line_of(data, nul),
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ResourceFileError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as"
            " UTF-8 (plain text)",
            filename,
            _line_of(data, e.start),
        ) from None


def _unit_fix(key: str, number: str, unit: str) -> str:
    """How to write a value that came with a unit, e.g. memr=512M -> memr=0.5."""
    meaning, example = _MEANING[key]
    units = {"gpu": {"gpu": 1, "gpus": 1}, "cpur": _CPU_UNITS, "cpul": _CPU_UNITS}
    factor = units.get(key, _MEMORY_UNITS).get(unit.lower())
    if factor is not None:
        value = Fraction(number) * factor
        written = format_number(value) if value < _SUGGESTIBLE else ""
        if value >= 0 and _on_step(key, value) and _NUMBER.fullmatch(written):
            return f"write {key}={written} ({meaning}, without units)"
    return f"write {meaning}, without units, such as {key}={example}"


def _number(key: str, text: str, fail) -> Fraction:
    """The value of one line as an exact fraction, or a message saying how to write it."""
    meaning, example = _MEANING[key]
    shown = f"{key}={_show(text)}"
    if _NUMBER.fullmatch(text):
        return Fraction(text)
    if text.lower() in _NOT_FINITE:
        fail(f"{shown}: write a finite number, such as {key}={example}")
    with_unit = _WITH_UNIT.fullmatch(text)
    if with_unit:
        fail(f"{shown}: {_unit_fix(key, *with_unit.groups())}")
    fail(
        f'{shown}: "{_show(text)}" is not a number; write {meaning},'
        f" such as {key}={example}"
    )


def _suggest_step(key: str, value: Fraction) -> str:
    """The nearest value on the key's step, never 0 for a positive value."""
    step = _STEP[key][0] if key != "memr" and key != "meml" else Fraction(1, 8)
    near = max(round(value / step), 1) * step
    return f"{key}={format_number(near)}"


def _check_range(key: str, value: Fraction, text: str, policy, fail) -> None:
    """Refuse negatives, zero limits, values above the maximum and off-step values."""
    shown = f"{key}={_show(text)}"
    default = format_number(getattr(policy.defaults, key))
    if value < 0:
        fail(
            f"{shown}: must not be negative; write {key}={_MEANING[key][1]},"
            f" or remove the line for the default ({default})"
        )
    if key in REQUEST_OF and value == 0:
        fail(
            f"{shown}: a limit must be above 0; write {key}={_MEANING[key][1]},"
            f" or remove the line for the default ({default})"
        )
    if key in LIMIT_OF and value == 0:
        # Kubernetes reads a missing request as "request the limit", so 0
        # would reserve more than asked for, above the request maximum.
        fail(
            f"{shown}: a request must be above 0 (with no request Kubernetes"
            f" reserves the whole limit); write {key}={_SMALL[key]} for a small"
            f" request, or remove the line for the default ({default})"
        )
    # before the step: a suggestion on the step is then a value that prints
    maximum = getattr(policy.maxima, key)
    if value > Fraction(maximum):
        if key == "gpu" and maximum == 0:
            fail(f"{shown}: this hub has no GPUs; write gpu=0 or remove the line")
        unit = {"gpu": "GPUs", "cpur": "cores", "cpul": "cores"}.get(key, "GB")
        top = format_number(maximum)
        fail(
            f"{shown}: above this hub's maximum of {top} {unit};"
            f" write {key}={top} or less"
        )
    if key == "gpu" and value.denominator != 1:
        low = math.floor(value)
        fail(f"{shown}: GPUs come whole; write gpu={low} or gpu={low + 1}")
    if not _on_step(key, value):
        fail(f"{shown}: must be in {_STEP[key][1]}; write {_suggest_step(key, value)}")


def _parse_line(content: str, given: dict, policy, fail) -> tuple[str, Fraction, str]:
    """One non-comment line to (key, exact value, text as written)."""
    if "=" not in content:
        words = content.replace(":", " ").split()
        fix = "such as memr=4"
        if len(words) == 2 and words[0] in KEYS:
            fix = f"{words[0]}={_show(words[1])}"
        fail(
            f'{_show(content)}: no "=" in this line; write key=value, {fix},'
            " or start the line with # to make it a comment",
            words[0] if words and words[0] in KEYS else None,
        )
    key, _, text = content.partition("=")
    key, text = key.strip(), text.strip()
    if not key:
        fail(
            f'{_show(content)}: no key before "="; start the line with one of'
            f" {', '.join(KEYS)}, such as memr=4"
        )
    if key not in KEYS:
        hint = difflib.get_close_matches(key.lower(), KEYS, n=1, cutoff=0.5)
        maybe = (
            f"did you mean {hint[0]}? write {hint[0]}={_show(text)}; " if hint else ""
        )
        fail(
            f'{_show(key)}={_show(text)}: unknown key "{_show(key)}"; {maybe}'
            f"the keys are {', '.join(KEYS)}",
            key,
        )
    if key in given:
        fail(
            f"{key}={_show(text)}: {key} is already set on line {given[key][1]};"
            f" keep only one {key} line",
            key,
        )
    if not text:
        meaning, example = _MEANING[key]
        fail(
            f"{key}=: no value; write {meaning}, such as {key}={example}, or remove the line",
            key,
        )
    value = _number(key, text, lambda reason: fail(reason, key))
    _check_range(key, value, text, policy, lambda reason: fail(reason, key))
    return key, value, text


def _check_pairs(given: dict, policy, filename: str) -> None:
    """Refuse a request above its limit, saying which line to change or add."""
    for request, limit in LIMIT_OF.items():
        r = given.get(request) or (
            Fraction(getattr(policy.defaults, request)),
            None,
            None,
        )
        lim = given.get(limit) or (
            Fraction(getattr(policy.defaults, limit)),
            None,
            None,
        )
        if r[0] <= lim[0]:
            continue
        r_text = _show(r[2]) if r[2] else format_number(r[0])
        l_text = _show(lim[2]) if lim[2] else format_number(lim[0])
        if r[1] and lim[1]:
            raise ResourceFileError(
                f"{request}={r_text}: the request is above the limit {limit}={l_text}"
                f" on line {lim[1]}; lower {request} or raise {limit} to at least"
                f" {r_text}",
                filename,
                r[1],
                request,
            )
        if r[1]:
            top = Fraction(getattr(policy.maxima, limit))
            fix = (
                f"add the line {limit}={r_text} (or more) to raise the limit"
                if r[0] <= top
                else f"write {request}={format_number(top)} or less, this hub's"
                f" largest {limit}"
            )
            raise ResourceFileError(
                f"{request}={r_text}: the request is above the default limit"
                f" {limit}={l_text}; {fix}",
                filename,
                r[1],
                request,
            )
        raise ResourceFileError(
            f"{limit}={l_text}: the limit is below the default request"
            f" {request}={r_text}; add the line {request}={l_text} (or less) to"
            f" lower the request, or raise {limit} to at least {r_text}",
            filename,
            lim[1],
            limit,
        )


def parse_resources(
    data: bytes | None, policy: ResourcePolicy | None = None, filename=".resources"
) -> Resources:
    """Parse a `.resources` file under a site policy; None (no file) means defaults.

    Raises `ResourceFileError` for anything it cannot use; whatever it
    returns is within the policy, so callers need no further checks.
    """
    policy = policy or ResourcePolicy()
    if data is None:
        return policy.defaults
    text = _decode(bytes(data), policy, filename)
    given: dict[str, tuple[Fraction, int, str]] = {}
    for number, raw in enumerate(_LINE_BREAK.split(text), start=1):
        content = raw.split("#", 1)[0].strip()
        if not content:
            continue

        def fail(reason, key=None, number=number):
            raise ResourceFileError(reason, filename, number, key)

        key, value, shown = _parse_line(content, given, policy, fail)
        given[key] = (value, number, shown)
    _check_pairs(given, policy, filename)
    values = policy.defaults.as_dict()
    values.update({key: float(value) for key, (value, _, _) in given.items()})
    return Resources(**values)
