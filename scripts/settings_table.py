"""Print the Markdown table of every PULSE_* setting (pasted into README.md; tests/test_readme.py checks it)."""

from __future__ import annotations

from marketpulse.settings import Settings


def main() -> None:
    print("| variable | default | meaning |")
    print("|---|---|---|")
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(secret)" if "key" in name else ("" if default is None else str(default))
        print(f"| `PULSE_{name.upper()}` | `{shown}` | {field.description or ''} |")


if __name__ == "__main__":
    main()
