from __future__ import annotations

import pytest

from exporter.config import (
    ALL_INTERFACES,
    ConfigError,
    ListenAddress,
    load_settings,
    parse_duration,
    parse_listen,
)

SECRET = "s3cr3t-MARKER-value"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(__import__("os").environ):
        if name.startswith(("GENESYS_", "EXPORTER_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("GENESYS_CLIENT_ID", "cid")
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", SECRET)


def test_region_forms_and_derived_urls(creds, monkeypatch):
    for form in ("eu-west-1", "eu_west_1", "mypurecloud.ie"):
        monkeypatch.setenv("GENESYS_REGION", form)
        settings = load_settings()
        assert settings.api_base == "https://api.mypurecloud.ie"
        assert settings.login_base == "https://login.mypurecloud.ie"


def test_loopback_api_url_serves_login_too(creds, monkeypatch):
    monkeypatch.setenv("GENESYS_API_URL", "http://127.0.0.1:8089/")
    settings = load_settings()
    assert (settings.api_base, settings.login_base) == ("http://127.0.0.1:8089", "http://127.0.0.1:8089")


def test_lists_durations_and_defaults(creds, monkeypatch):
    monkeypatch.setenv("GENESYS_REGION", "us-east-1")
    monkeypatch.setenv("GENESYS_QUEUE_IDS", " a, b ,,c")
    monkeypatch.setenv("GENESYS_QUEUE_INTERVAL", "1m30s")
    settings = load_settings()
    assert settings.queue_ids == ("a", "b", "c")
    assert settings.queue_interval == 90.0
    assert settings.listen == ListenAddress(ALL_INTERFACES, 10474)
    assert settings.directory_interval == 600.0


def test_precedence_cli_over_env_over_dotenv_over_file(creds, monkeypatch, tmp_path):
    (tmp_path / "c.yml").write_text("region: eu-west-1\nqueue_interval: 20s\nqueue_name: 'A*'\nconcurrency: 3\n")
    (tmp_path / ".env").write_text("GENESYS_QUEUE_INTERVAL=15s\nGENESYS_CONCURRENCY=4\n")
    monkeypatch.setenv("GENESYS_CONCURRENCY", "5")
    settings = load_settings(tmp_path / "c.yml", {"listen": "127.0.0.1:9999"})
    assert settings.region is not None and settings.region.domain == "mypurecloud.ie"  # file only
    assert settings.queue_name == "A*"
    assert settings.queue_interval == 15.0  # .env beats the file
    assert settings.concurrency == 5  # env beats .env
    assert str(settings.listen) == "127.0.0.1:9999"  # CLI beats all


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GENESYS_CLIENT_SECRET": None}, "GENESYS_CLIENT_SECRET: required but not set"),
        ({"GENESYS_REGION": "mars-north-1"}, "GENESYS_REGION:"),
        ({"GENESYS_REGION": None}, "set GENESYS_REGION"),
        (
            {"GENESYS_API_URL": "http://api.example.com"},
            "GENESYS_API_URL: plain http is allowed only for loopback",
        ),
        ({"GENESYS_API_URL": "ftp://x"}, "GENESYS_API_URL: invalid URL"),
        ({"GENESYS_QUEUE_INTERVAL": "10x"}, "GENESYS_QUEUE_INTERVAL: invalid duration '10x'"),
        ({"GENESYS_QUEUE_INTERVAL": "0s"}, "GENESYS_QUEUE_INTERVAL: duration must be positive"),
        ({"EXPORTER_LISTEN": "nope"}, "EXPORTER_LISTEN: invalid listen address"),
        ({"EXPORTER_LOG_FORMAT": "xml"}, "EXPORTER_LOG_FORMAT:"),
        ({"GENESYS_TIMEZONE": "Mars/Olympus"}, "GENESYS_TIMEZONE: unknown time zone"),
        ({"GENESYS_RATE_HEADROOM": "1.5"}, "GENESYS_RATE_HEADROOM:"),
    ],
)
def test_bad_settings_give_one_line_naming_the_setting(monkeypatch, env, expected):
    base = {"GENESYS_CLIENT_ID": "cid", "GENESYS_CLIENT_SECRET": SECRET, "GENESYS_REGION": "us-east-1"}
    for name, value in {**base, **env}.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert SECRET not in message


def test_malformed_and_missing_yaml(creds, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("region: [unclosed\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.yml")
    (tmp_path / "typo.yml").write_text("regoin: eu-west-1\n")
    with pytest.raises(ConfigError, match="unknown setting 'regoin'"):
        load_settings(tmp_path / "typo.yml")


def test_secret_never_in_repr(creds, monkeypatch):
    monkeypatch.setenv("GENESYS_REGION", "us-east-1")
    settings = load_settings()
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert settings.client_secret.get_secret_value() == SECRET


def test_duration_and_listen_parsers():
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2h") == 7200
    assert parse_duration(3) == 3.0
    assert parse_listen(":9100") == ListenAddress(ALL_INTERFACES, 9100)
    assert parse_listen("[::1]:80") == ListenAddress("::1", 80)
    with pytest.raises(ValueError, match="listen"):
        parse_listen("host:99999")
