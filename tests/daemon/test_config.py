"""Configuration: file + environment, the documented search order, one clear error and exit code 78."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from docs_pages import code_name, page, table_rows

from heygemd.daemon import config as config_module
from heygemd.daemon.config import (
    ConfigError,
    HeygemdConfig,
    Readiness,
    WatchMode,
    default_config_text,
    find_config_file,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]


def heygemd(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("HEYGEMD_")} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "heygemd", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


def test_defaults_match_the_quick_start_layout():
    config = HeygemdConfig()
    assert (config.paths.inbox, config.paths.outbox, config.paths.quarantine, config.paths.state) == (
        Path("inbox"),
        Path("outbox"),
        Path("quarantine"),
        Path("state"),
    )
    assert config.engine.checkpoint == Path("checkpoints/wav2lip_gan.pth")
    assert config.watch.mode is WatchMode.AUTO and config.watch.readiness is Readiness.SETTLE


def test_file_then_environment_override(tmp_path, monkeypatch):
    file = tmp_path / "h.toml"
    file.write_text('[watch]\nmode = "polling"\nsettle_seconds = 3\n[render]\ncrf = 20\n[engine]\ndry_run = true\n')
    monkeypatch.setenv("HEYGEMD_WATCH__SETTLE_SECONDS", "7")
    monkeypatch.setenv("HEYGEMD_PATHS__INBOX", "/srv/share/inbox")
    config = load_config(file).config
    assert config.watch.mode is WatchMode.POLLING  # from the file
    assert config.watch.settle_seconds == 7  # environment wins
    assert config.paths.inbox == Path("/srv/share/inbox")
    assert config.render.crf == 20 and config.engine.dry_run is True
    assert config.render.preset == "medium"  # untouched keys keep their defaults


def test_a_config_from_the_lease_era_still_loads(tmp_path):
    file = tmp_path / "h.toml"
    file.write_text("[service]\nlease_seconds = 60.0\nstall_seconds = 90\n")  # the key went with the lease protocol
    service = load_config(file).config.service
    assert service.stall_seconds == 90 and not hasattr(service, "lease_seconds")
    misspelt = tmp_path / "misspelt.toml"
    misspelt.write_text("[service]\nlease_second = 1\n")
    with pytest.raises(ConfigError, match="lease_second"):  # any other unknown key is still an error
        load_config(misspelt)


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEYGEMD_CONFIG", raising=False)
    system_wide = tmp_path / "etc" / "heygemd.toml"  # stands for /etc/heygemd/heygemd.toml, which this machine may have
    monkeypatch.setattr(config_module, "DEFAULT_SEARCH_PATHS", (Path("config/heygemd.toml"), system_wide))
    assert find_config_file(None, {}) is None
    system_wide.parent.mkdir()
    system_wide.write_text("")
    assert find_config_file(None, {}) == system_wide
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "heygemd.toml").write_text("")
    assert find_config_file(None, {}) == Path("config/heygemd.toml")
    other = tmp_path / "other.toml"
    other.write_text("")
    assert find_config_file(None, {"HEYGEMD_CONFIG": str(other)}) == other
    assert find_config_file(Path("config/heygemd.toml"), {"HEYGEMD_CONFIG": str(other)}) == Path("config/heygemd.toml")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[watch\nmode=1", "is not valid TOML"),
        ('[watch]\nmode = "sometimes"\n', "watch.mode"),
        ("[watch]\nsettle_secnds = 3\n", "watch.settle_secnds: unknown key"),
        ("[engine]\nbatch_size = 0\n", "engine.batch_size"),
        ('[render]\nloop = "boomerang"\n', "render.loop"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path, content, expected):
    file = tmp_path / "bad.toml"
    file.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert expected in str(caught.value) and str(file) in str(caught.value)


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    monkeypatch.setenv("HEYGEMD_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="HEYGEMD_CONFIG"):
        load_config(None)


def test_config_errors_exit_78_with_one_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[watch]\nmode = "sometimes"\n')
    for command in ("run", "status", "doctor", "fetch-models"):
        result = heygemd(command, "--config", str(bad), cwd=tmp_path)
        assert result.returncode == 78, (command, result.stderr)
        assert "watch.mode" in result.stderr
    missing = heygemd("run", "--config", "nowhere.toml", cwd=tmp_path)
    assert missing.returncode == 78 and "nowhere.toml" in missing.stderr and "does not exist" in missing.stderr
    environment = heygemd("status", cwd=tmp_path, env={"HEYGEMD_WATCH__SETTLE_SECONDS": "soon"})
    assert environment.returncode == 78 and "HEYGEMD_WATCH__SETTLE_SECONDS" in environment.stderr


def test_the_configuration_reference_lists_every_key_once_and_nothing_else():
    rows = [code_name(row[0]) for row in table_rows(page("configuration.md"))]
    documented = [key for key in rows if key and "." in key]
    keys = [
        f"{section}.{key}" for section, field in HeygemdConfig.model_fields.items() for key in field.annotation.model_fields
    ]
    assert sorted(documented) == sorted(keys), "docs/configuration.md needs one row per configuration key"


def test_shipped_config_documents_every_key_with_its_default():
    shipped = (REPO / "config" / "heygemd.toml").read_text(encoding="utf-8")
    assert shipped == default_config_text(), "regenerate config/heygemd.toml from default_config_text()"
    parsed = tomllib.loads(shipped)
    for section, field in HeygemdConfig.model_fields.items():
        for key in field.annotation.model_fields:
            assert key in parsed[section] or f"# {key} = " in shipped, f"{section}.{key} is not in the shipped file"
    assert HeygemdConfig.model_validate(parsed) == HeygemdConfig()
