"""README documents the two commands and every setting, so a new user can run and configure marketpulse."""

from __future__ import annotations

from pathlib import Path

from marketpulse.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_shows_both_commands() -> None:
    assert "make run" in README and "make test" in README


def test_readme_documents_every_setting() -> None:
    missing = [f"PULSE_{n.upper()}" for n in Settings.model_fields if f"PULSE_{n.upper()}" not in README]
    assert not missing, f"README.md lacks: {missing} (regenerate with scripts/settings_table.py)"


def test_settings_read_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("PULSE_SPIKE_RATIO", "4.5")
    monkeypatch.setenv("PULSE_BUS_URL", "redis://127.0.0.1:6379/0")
    s = Settings()
    assert s.spike_ratio == 4.5 and s.bus_url.startswith("redis://")


def test_secret_key_is_not_in_repr() -> None:
    s = Settings(ingest_api_key="super-secret-value")
    assert "super-secret-value" not in repr(s) and "super-secret-value" not in str(s.model_dump())
