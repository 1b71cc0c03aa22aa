"""The idle service's reference page names every option, and only those."""

import re
from pathlib import Path

from hubext.idle import IdleService

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_reference_lists_every_option():
    text = (DOCS / "reference" / "idle-service.md").read_text()
    documented = set(re.findall(r"^### `IdleService\.(\w+)`", text, re.M))
    traits = set(IdleService.class_own_traits(config=True))
    assert documented == traits, (
        f"missing from the page: {sorted(traits - documented)}; "
        f"documented but gone: {sorted(documented - traits)}"
    )


def test_reference_defaults_match_the_code():
    text = (DOCS / "reference" / "idle-service.md").read_text()
    for name, trait in IdleService.class_own_traits(config=True).items():
        if name in ("url", "api_token"):
            continue
        heading = f"### `IdleService.{name}`"
        section = text.split(heading, 1)[1].split("###", 1)[0]
        assert f"default `{trait.default_value!r}`" in section, name


def test_how_to_scopes_are_the_ones_tested():
    from tests.test_idle import IDLE_SCOPES

    text = (DOCS / "how-to" / "idle-removal.md").read_text()
    for scope in IDLE_SCOPES:
        assert f'"{scope}"' in text and f"`{scope}`" in text, scope
