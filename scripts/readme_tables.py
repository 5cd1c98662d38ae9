"""Generate the README's per-modality tables from the modality table (the single source).

    python scripts/readme_tables.py          # print the tables
    python scripts/readme_tables.py --write  # replace them in README.md between the markers

tests/test_docs.py fails when README.md is out of step with nodes/modalities.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- BEGIN GENERATED: modalities (scripts/readme_tables.py) -->"
END = "<!-- END GENERATED: modalities -->"


def render() -> str:
    from scenario_detect.nodes.modalities import MODALITIES, NETWORK_PARAMS, PARAMS

    lines = [
        "| modality | what you get | widgets that apply | local methods (first = `auto`) |",
        "|---|---|---|---|",
    ]
    for modality in MODALITIES.values():
        widgets = ", ".join(f"`{name}`" for name in modality.params) or "none"
        methods = ", ".join(
            f"`{m.name}`" + (" (weights)" if m.needs_weights else " (weight-free)") for m in modality.local_methods
        )
        lines.append(f"| `{modality.name}` | {modality.description} | {widgets} | {methods} |")
    lines += [
        "",
        "| widget | API field | type | default | range | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for param in (*PARAMS.values(), *NETWORK_PARAMS.values()):
        span = "true / false" if param.kind == "bool" else f"{param.min:g} .. {param.max:g}"
        field = f"`{param.api_field}`" if param.api_field else "none (local networks)"
        lines.append(f"| `{param.name}` | {field} | {param.kind} | `{param.default}` | {span} | {param.tooltip} |")
    return "\n".join(lines)


def replaced(readme: str) -> str:
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + render() + "\n" + readme[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if not args.write:
        print(render())
        return 0
    path = ROOT / "README.md"
    path.write_text(replaced(path.read_text()))
    print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
