from __future__ import annotations

import pytest
from pydantic import SecretStr

from exporter import logs
from exporter.config import (
    ALL_INTERFACES,
    ConfigError,
    ListenAddress,
    OAuthClient,
    Settings,
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


# ----- several OAuth clients (issue 12) --------------------------------------------------------
SECRETS = ("MARKER-first-secret", "MARKER-second-secret", "MARKER-third-secret")


def pairs(settings: Settings) -> list[tuple[str, str]]:
    return [(c.client_id, c.client_secret.get_secret_value()) for c in settings.clients]


def test_one_client_is_todays_behaviour(creds, monkeypatch):
    monkeypatch.setenv("GENESYS_REGION", "us-east-1")
    settings = load_settings()
    assert settings.clients == (OAuthClient("cid", SecretStr(SECRET)),)
    assert (settings.client_id, settings.client_secret.get_secret_value()) == ("cid", SECRET)
    assert settings.clients[0].label == "cid"


def test_environment_lists_make_one_client_per_entry(monkeypatch):
    monkeypatch.setenv("GENESYS_CLIENT_ID", " id-a, id-b ,id-c")
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", ",".join(SECRETS))
    monkeypatch.setenv("GENESYS_REGION", "us-east-1")
    settings = load_settings()
    assert pairs(settings) == list(zip(("id-a", "id-b", "id-c"), SECRETS, strict=True))
    assert [c.label for c in settings.clients] == ["id-a", "id-b", "id-c"]
    assert (settings.client_id, settings.client_secret.get_secret_value()) == ("id-a", SECRETS[0])  # the first
    assert not any(secret in repr(settings) or secret in repr(settings.clients) for secret in SECRETS)


def test_cli_overrides_take_lists_too(monkeypatch):
    settings = load_settings(None, {"client_id": "a,b", "client_secret": "x-secret,y-secret", "region": "eu-west-1"})
    assert pairs(settings) == [("a", "x-secret"), ("b", "y-secret")]


def test_yaml_clients_list(tmp_path):
    (tmp_path / "c.yml").write_text(
        "region: eu-west-1\nclients:\n"
        f"  - {{client_id: id-a, client_secret: {SECRETS[0]}}}\n"
        f"  - client_id: id-b\n    client_secret: {SECRETS[1]}\n"
    )
    settings = load_settings(tmp_path / "c.yml")
    assert pairs(settings) == [("id-a", SECRETS[0]), ("id-b", SECRETS[1])]
    assert settings.client_id == "id-a"


def test_environment_lists_replace_the_files_clients(monkeypatch, tmp_path):
    (tmp_path / "c.yml").write_text(f"region: eu-west-1\nclients:\n  - {{client_id: filed, client_secret: {SECRET}}}\n")
    monkeypatch.setenv("GENESYS_CLIENT_ID", "env-a,env-b")
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", ",".join(SECRETS[:2]))
    assert [c.client_id for c in load_settings(tmp_path / "c.yml").clients] == ["env-a", "env-b"]


@pytest.mark.parametrize(
    ("ids", "secrets", "expected"),
    [
        ("a,b", SECRETS[0], "GENESYS_CLIENT_ID has 2 entries but GENESYS_CLIENT_SECRET has 1"),
        ("a", ",".join(SECRETS[:2]), "GENESYS_CLIENT_ID has 1 entries but GENESYS_CLIENT_SECRET has 2"),
        ("a,,c", ",".join(SECRETS), "GENESYS_CLIENT_ID: entry 2 is empty"),
        ("a,b,", ",".join(SECRETS), "GENESYS_CLIENT_ID: entry 3 is empty"),
        ("a,b,c", f"{SECRETS[0]}, ,{SECRETS[2]}", "GENESYS_CLIENT_SECRET: entry 2 is empty"),
        (" ", SECRETS[0], "GENESYS_CLIENT_ID: must not be empty"),
        ("a", " ", "GENESYS_CLIENT_SECRET: must not be empty"),
        ("a,b,a", ",".join(SECRETS), "GENESYS_CLIENT_ID: entries 1 and 3 are the same client id"),
        ("ABC-1,abc-1", ",".join(SECRETS[:2]), "GENESYS_CLIENT_ID: entries 1 and 2 are the same client id"),
        # a secret pasted among the ids: the error names positions, never the value
        (f"a,{SECRETS[1]},{SECRETS[1]}", ",".join(SECRETS), "entries 2 and 3 are the same client id"),
    ],
)
def test_bad_client_lists_are_one_line_without_a_secret(monkeypatch, ids, secrets, expected):
    monkeypatch.setenv("GENESYS_CLIENT_ID", ids)
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", secrets)
    monkeypatch.setenv("GENESYS_REGION", "us-east-1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert not any(secret in message for secret in SECRETS)


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (f"client_id: a\nclients:\n  - {{client_id: b, client_secret: {SECRET}}}\n", "clients cannot be combined"),
        (f"client_secret: {SECRET}\nclients:\n  - {{client_id: b, client_secret: {SECRET}}}\n", "top-level"),
        ("clients: []\n", "clients: expected a list of {client_id, client_secret}"),
        (f"clients: {SECRET}\n", "clients: expected a list"),
        (f"clients:\n  - {{client_id: a}}\n  - {{client_id: b, client_secret: {SECRET}}}\n", "entry 1 must have"),
        (f"clients:\n  - {{client_id: a, client_secret: {SECRET}, x: 1}}\n", "exactly the keys"),
        ("clients:\n  - {client_id: a, client_secret: ' '}\n", "entry 1: client_secret must be non-empty"),
        (f"clients:\n  - {{client_id: a, client_secret: {SECRET}}}\n  - [{SECRET}]\n", "entry 2 must have"),
        (
            f"clients:\n  - {{client_id: a, client_secret: {SECRET}}}\n"
            f"  - {{client_id: a, client_secret: {SECRET}x}}\n",
            "clients: entries 1 and 2 are the same client id",
        ),
    ],
)
def test_bad_yaml_clients_are_one_line_without_a_secret(tmp_path, yaml_text, expected):
    (tmp_path / "c.yml").write_text("region: eu-west-1\n" + yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "c.yml")
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and SECRET not in message


def test_cli_exits_2_on_a_client_list_mismatch(monkeypatch, capsys):
    from exporter import cli

    monkeypatch.setenv("GENESYS_CLIENT_ID", "a,b")
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", SECRETS[0])
    monkeypatch.setenv("GENESYS_REGION", "us-east-1")
    assert cli.main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GENESYS_CLIENT_ID has 2 entries" in err and SECRETS[0] not in err


def test_every_clients_secret_is_redacted(monkeypatch):
    registered: list[str] = []
    monkeypatch.setattr(logs, "redact", registered.append)
    monkeypatch.setenv("GENESYS_CLIENT_ID", "a,b,c")
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", ",".join(SECRETS))
    monkeypatch.setenv("GENESYS_REGION", "us-east-1")
    load_settings()
    assert set(SECRETS) <= set(registered)


def test_settings_built_in_code_take_clients():
    built = Settings(
        clients=[OAuthClient("a", SecretStr(SECRETS[0])), {"client_id": "b", "client_secret": SECRETS[1]}],
        api_url="http://127.0.0.1:8089",
    )
    assert pairs(built) == [("a", SECRETS[0]), ("b", SECRETS[1])]
    assert Settings(client_id="a", client_secret=SECRET, api_url="http://127.0.0.1:8089").clients[0].label == "a"
