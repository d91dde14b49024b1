"""Print the Markdown table of every PULSE_* setting; README.md carries it verbatim (tests/test_readme.py checks).

    python scripts/settings_table.py            # print the table
    python scripts/settings_table.py --write    # replace the table in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import SecretStr

from marketpulse.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| variable | default | meaning |"


def shown_default(default: object) -> str:
    if isinstance(default, SecretStr):  # the built-in key is public (and refused outside PULSE_ENV=dev): show it
        return default.get_secret_value()
    return "" if default is None else str(default)


def table() -> str:
    lines = [HEADER, "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        lines.append(f"| `PULSE_{name.upper()}` | `{shown_default(field.default)}` | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def readme_table(text: str) -> str:
    """The settings table as README.md has it: from its header line to the first line that is not a table row."""
    start = text.index(HEADER)
    end = start
    for line in text[start:].splitlines(keepends=True):
        if not line.startswith("|"):
            break
        end += len(line)
    return text[start:end]


def main() -> None:
    if "--write" in sys.argv[1:]:
        text = README.read_text()
        README.write_text(text.replace(readme_table(text), table()))
    else:
        print(table(), end="")


if __name__ == "__main__":
    main()
