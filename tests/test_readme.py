"""README documents the two commands and every setting, so a new user can run and configure marketpulse."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from marketpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _settings_table_script():  # scripts/ is not a package: load the file itself
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_shows_both_commands() -> None:
    assert "make run" in README and "make test" in README


def test_readme_documents_every_setting() -> None:
    missing = [f"PULSE_{n.upper()}" for n in Settings.model_fields if f"PULSE_{n.upper()}" not in README]
    assert not missing, f"README.md lacks: {missing} (regenerate with scripts/settings_table.py)"


def test_readme_settings_table_is_the_generated_one() -> None:
    script = _settings_table_script()
    assert script.readme_table(README) == script.table(), "run: python scripts/settings_table.py --write"


def test_every_setting_says_what_it_does() -> None:
    undescribed = [f"PULSE_{n.upper()}" for n, f in Settings.model_fields.items() if not (f.description or "").strip()]
    assert not undescribed, f"settings without a description: {undescribed}"


def test_readme_shows_the_development_ingest_key_as_its_default() -> None:
    assert "| `PULSE_INGEST_API_KEY` | `dev-ingest-key` |" in README and "(secret)" not in README


def test_settings_read_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("PULSE_SPIKE_RATIO", "4.5")
    monkeypatch.setenv("PULSE_BUS_URL", "redis://127.0.0.1:6379/0")
    s = Settings()
    assert s.spike_ratio == 4.5 and s.bus_url.startswith("redis://")


def test_secret_key_is_not_in_repr() -> None:
    s = Settings(ingest_api_key="super-secret-value")
    assert "super-secret-value" not in repr(s) and "super-secret-value" not in str(s.model_dump())


def test_readme_pictures_exist_and_stay_small() -> None:
    """The screenshots `make screenshots` writes are documentation: each one the README shows is committed, small."""
    import re

    pictures = re.findall(r"\]\((docs/screenshots/[^)]+\.png)\)", README)
    assert len(pictures) >= 5
    for picture in pictures:
        path = ROOT / picture
        assert path.is_file(), f"{picture}: run make screenshots"
        assert path.stat().st_size < 150_000, f"{picture} is {path.stat().st_size} bytes"
