"""Write the chart's generated files from charts/hubext/values.schema.yaml.

    python charts/generate.py          # write the schema JSON, the BinderHub overlay, the docs page
    python charts/generate.py --check  # exit 1 if either is out of date

The schema is the one source; tests/test_chart.py runs the check.
"""

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hubext.chart import (  # noqa: E402
    OVERLAY_HEADER,
    binderhub_values,
    dump_yaml,
    schema_json,
    values_reference,
)

CHART = ROOT / "charts" / "hubext"


def outputs() -> dict[Path, str]:
    """Each generated file and the text it must hold."""
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text("utf-8"))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text("utf-8"))
    return {
        CHART / "values.schema.json": schema_json(schema),
        CHART / "binderhub-values.yaml": OVERLAY_HEADER + dump_yaml(binderhub_values()),
        ROOT / "docs" / "reference" / "helm-values.md": values_reference(
            schema, defaults
        ),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text("utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.write_text(text, "utf-8")
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"out of date: {names}; run python charts/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
