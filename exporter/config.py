"""Settings from CLI flags, the environment, a `.env` file and a YAML file, in that order of precedence.

A wrong setting must stop the process with one line that names the setting and says what is wrong
(`ConfigError`), never with a traceback, and never with the secret in it: pydantic's own messages
repeat the input value, so errors are re-worded here from the location and the reason only.

One exporter may log in with several OAuth clients of the same org (each has its own rate budget
and its own 20 notification channels): `GENESYS_CLIENT_ID` and `GENESYS_CLIENT_SECRET` are then
comma lists of the same length, or the YAML file lists `clients:`. `Settings.clients` has them all;
`client_id` and `client_secret` stay the first, for code that knows only one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from exporter import logs
from exporter.genesys.regions import Region, resolve_region

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - an exporter serves Prometheus on the network by default
DEFAULT_PORT = 10474  # outside 9100-9999, which the Prometheus default-port list has fully allocated


class ConfigError(Exception):
    """A bad setting: the message is one line, fit to print as the process's last words."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from `10s`, `1m30s`, `500ms`, `2h` or a bare number of seconds (Prometheus style)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (text := value.strip().lower()):
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif re.fullmatch(rf"(?:{_DURATION_PART.pattern})+", text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"invalid duration {value!r} (use e.g. 10s, 1m30s, 500ms)")
    else:
        raise ValueError(f"invalid duration {value!r} (use e.g. 10s, 1m30s, 500ms)")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def _comma_list(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Sequence):
        raise ValueError("expected a comma-separated list")
    return tuple(str(item).strip() for item in items if str(item).strip())


Duration = Annotated[float, BeforeValidator(parse_duration)]
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: object) -> ListenAddress:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces); port 0 takes any free port."""
    if isinstance(value, ListenAddress):
        return value
    match = re.fullmatch(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})", str(value).strip())
    if not match or not 0 <= int(match["port"]) < 65536:  # port 0: any free port
        raise ValueError(f"invalid listen address {value!r} (use HOST:PORT, e.g. 0.0.0.0:{DEFAULT_PORT})")
    return ListenAddress(match["v6"] or match["host"] or ALL_INTERFACES, int(match["port"]))


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _base_url(value: object) -> str | None:
    """An API or login base: https, or http on loopback only (a simulator), no path beyond `/`."""
    if value is None or value == "":
        return None
    url = str(value).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid URL {url!r} (expected e.g. https://api.mypurecloud.ie)")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"plain http is allowed only for loopback addresses, got {url!r}; use https")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{url!r} must be a bare base URL (scheme and host, optionally a port)")
    return url


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """One OAuth client (Client Credentials grant) of the org: its own token, rate budget and channels."""

    client_id: str
    client_secret: SecretStr

    @property
    def label(self) -> str:
        """The value of the `client` label of per-client metrics: the id names the client and is no secret."""
        return self.client_id


def _entries(value: object, name: str) -> list[str]:
    """A comma list's entries, stripped. Empty ones are kept: a stray comma is an error, not nothing."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(text, str):
        raise ValueError(f"{name}: expected text (a comma list for several OAuth clients)")
    entries = [entry.strip() for entry in text.split(",")]
    for number, entry in enumerate(entries, 1):
        if not entry:
            raise ValueError(f"{name}: must not be empty" if len(entries) == 1 else f"{name}: entry {number} is empty")
    return entries


def _distinct(pairs: Sequence[tuple[str, str]], where: str) -> tuple[OAuthClient, ...]:
    """The clients, once each. A repeat is named by position, never by value: it may be a misplaced secret."""
    first_at: dict[str, int] = {}
    for number, (client_id, _) in enumerate(pairs, 1):
        seen = first_at.setdefault(client_id.lower(), number)  # ids are GUIDs: case does not make another client
        if seen != number:
            raise ValueError(
                f"{where}: entries {seen} and {number} are the same client id (list each OAuth client once)"
            )
    return tuple(OAuthClient(client_id, SecretStr(secret)) for client_id, secret in pairs)


def parse_clients(client_ids: object, client_secrets: object) -> tuple[OAuthClient, ...]:
    """The clients of `GENESYS_CLIENT_ID` and `GENESYS_CLIENT_SECRET`: comma lists, paired by position."""
    ids = _entries(client_ids, ENV_NAMES["client_id"])
    secrets = _entries(client_secrets, ENV_NAMES["client_secret"])
    if len(ids) != len(secrets):
        raise ValueError(
            f"{ENV_NAMES['client_id']} has {len(ids)} entries but {ENV_NAMES['client_secret']} has {len(secrets)}: "
            "give one secret per client id, in the same order"
        )
    return _distinct(list(zip(ids, secrets, strict=True)), ENV_NAMES["client_id"])


def listed_clients(value: object) -> tuple[OAuthClient, ...]:
    """The clients of the YAML file's `clients:` list of `{client_id, client_secret}`."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise ValueError("clients: expected a list of {client_id, client_secret}, one per OAuth client")
    pairs: list[tuple[str, str]] = []
    for number, entry in enumerate(value, 1):
        if isinstance(entry, OAuthClient):
            entry = {"client_id": entry.client_id, "client_secret": entry.client_secret}
        if not isinstance(entry, Mapping) or set(entry) != {"client_id", "client_secret"}:
            raise ValueError(f"clients: entry {number} must have exactly the keys client_id and client_secret")
        client_id, secret = (_listed_text(entry[key], number, key) for key in ("client_id", "client_secret"))
        pairs.append((client_id, secret))
    return _distinct(pairs, "clients")


def _listed_text(value: object, number: int, key: str) -> str:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"clients: entry {number}: {key} must be non-empty text")
    return text.strip()


BaseUrl = Annotated[str | None, BeforeValidator(_base_url)]
Listen = Annotated[ListenAddress, NoDecode, BeforeValidator(parse_listen)]

# Setting name (as used in YAML and by the CLI) -> the environment variable that sets it.
ENV_NAMES: dict[str, str] = {}
# Keys only the YAML file has (a list of mappings has no environment variable).
FILE_ONLY = frozenset({"clients"})


def _setting(env: str, default: Any = ..., description: str = "") -> Any:
    return Field(default, validation_alias=env, description=description)


class Settings(BaseSettings):
    """Everything the exporter can be told. Names in YAML are the lower-case field names."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, frozen=True, case_sensitive=False
    )

    client_id: str = _setting(
        "GENESYS_CLIENT_ID", description="OAuth client id (Client Credentials grant); a comma list for several"
    )
    client_secret: SecretStr = _setting("GENESYS_CLIENT_SECRET", description="OAuth client secret; a comma list")
    _clients: tuple[OAuthClient, ...] = PrivateAttr(default=())
    region: Annotated[Region | None, NoDecode] = _setting(
        "GENESYS_REGION", None, "e.g. eu-west-1, eu_west_1 or mypurecloud.ie"
    )
    api_url: BaseUrl = _setting("GENESYS_API_URL", None, "API base URL, overriding the region's")
    login_url: BaseUrl = _setting("GENESYS_LOGIN_URL", None, "login base URL; token endpoint is <url>/oauth/token")
    queue_ids: CommaList = _setting("GENESYS_QUEUE_IDS", (), "only these queues (comma list)")
    queue_name: str | None = _setting("GENESYS_QUEUE_NAME", None, "only queues whose name matches this glob")
    division_ids: CommaList = _setting("GENESYS_DIVISION_IDS", (), "only queues in these divisions (comma list)")
    timezone: str = _setting("GENESYS_TIMEZONE", "UTC", "IANA zone that defines 'today' for daily figures")
    day_start: str = _setting("GENESYS_DAY_START", "00:00", "local time the day's figures start (HH:MM, e.g. a shift)")
    agent_scope: Literal["members", "users"] = _setting(
        "GENESYS_AGENT_SCOPE", "members", "members: agents of the queues in scope; users: every active user"
    )
    agent_metrics: CommaList = _setting(
        "GENESYS_AGENT_METRICS", ("default",), "agent families exported: default, all, or their names (comma list)"
    )
    agent_teams: CommaList = _setting(
        "GENESYS_AGENT_TEAMS", (), "export only agents of these work teams (names or ids)"
    )
    agent_divisions: CommaList = _setting(
        "GENESYS_AGENT_DIVISIONS", (), "export only agents of these divisions (names or ids)"
    )
    agent_shards: int = _setting("GENESYS_AGENT_SHARDS", 1, "shards of collect[]=agents (&shard=K/N), by user id")
    queue_interval: Duration = _setting("GENESYS_QUEUE_INTERVAL", 8.0, "queue observation poll cadence")
    agent_interval: Duration = _setting("GENESYS_AGENT_INTERVAL", 15.0, "agent routing status/presence cadence")
    performance_interval: Duration = _setting("GENESYS_PERFORMANCE_INTERVAL", 15.0, "today's aggregates cadence")
    directory_interval: Duration = _setting("GENESYS_DIRECTORY_INTERVAL", 600.0, "queue and agent list refresh cadence")
    push: Literal["auto", "off"] = _setting(
        "GENESYS_PUSH", "auto", "auto: push through notification channels where permitted, poll the rest; off: poll"
    )
    push_channels: int = _setting("GENESYS_PUSH_CHANNELS", 20, "notification channels the OAuth client may hold")
    push_sweep_interval: Duration = _setting(
        "GENESYS_PUSH_SWEEP_INTERVAL", 600.0, "cadence of the slow poll of every pushed item that repairs a lost event"
    )
    rate_limit_per_minute: float = _setting("GENESYS_RATE_LIMIT", 300.0, "requests/minute the OAuth client may use")
    rate_headroom: float = _setting("GENESYS_RATE_HEADROOM", 0.10, "fraction of the rate limit left unused")
    concurrency: int = _setting("GENESYS_CONCURRENCY", 8, "requests in flight at most")
    jitter: float = _setting("GENESYS_JITTER", 0.1, "fraction of each cadence by which its cycles are offset at random")
    request_timeout: Duration = _setting("GENESYS_REQUEST_TIMEOUT", 30.0, "timeout of one API request")
    listen: Listen = _setting("EXPORTER_LISTEN", ListenAddress(ALL_INTERFACES, DEFAULT_PORT), "HOST:PORT to serve on")
    web_config_file: Path | None = _setting(
        "EXPORTER_WEB_CONFIG", None, "TLS and basic auth for /metrics (exporter-toolkit web config format)"
    )
    log_format: Literal["json", "console", "auto"] = _setting(
        "EXPORTER_LOG_FORMAT", "auto", "json, console, or auto (console on a terminal)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = _setting("EXPORTER_LOG_LEVEL", "info", "log level")

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value: object) -> Region | None:
        if isinstance(value, Region):
            return value
        return resolve_region(str(value)) if value else None

    @field_validator("log_format", "log_level", "agent_scope", "push", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name, e.g. Europe/Dublin)") from None
        return value

    @field_validator("day_start")
    @classmethod
    def _day_start(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value.strip()):
            raise ValueError(f"invalid time of day {value!r} (use HH:MM, e.g. 06:00)")
        return value.strip()

    @property
    def day_start_time(self) -> time:
        hours, minutes = self.day_start.split(":")
        return time(int(hours), int(minutes))

    @field_validator("rate_limit_per_minute")
    @classmethod
    def _positive_rate(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive number of requests per minute")
        return value

    @field_validator("jitter")
    @classmethod
    def _jitter(cls, value: float) -> float:
        if not 0 <= value <= 0.5:
            raise ValueError("must be a fraction from 0 to 0.5 (e.g. 0.1 for 10% of each cadence)")
        return value

    @field_validator("rate_headroom")
    @classmethod
    def _headroom(cls, value: float) -> float:
        if not 0 <= value < 1:
            raise ValueError("must be a fraction from 0 to below 1 (e.g. 0.1 for 10%)")
        return value

    @field_validator("concurrency", "agent_shards")
    @classmethod
    def _one_to_64(cls, value: int) -> int:
        if not 1 <= value <= 64:
            raise ValueError("must be from 1 to 64")
        return value

    @field_validator("push_channels")
    @classmethod
    def _push_channels(cls, value: int) -> int:
        if not 2 <= value <= 20:
            raise ValueError("must be from 2 to 20 (one channel is kept spare for replacing a closing one)")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _split_clients(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        """Read the client lists (or the file's `clients:`) before the fields do: the fields get the first.

        The lists are one setting spread over two variables, and the file's `clients:` is a third
        spelling, so no single field can check them. Set anywhere, `client_id`/`client_secret` take
        the place of the file's `clients:` (the file is the last source; it may not hold both).
        """
        if not isinstance(data, dict):
            return handler(data)
        values = dict(data)
        listed = values.pop("clients", None)
        ids, secrets = (_pop_setting(values, name) for name in ("client_id", "client_secret"))
        clients: tuple[OAuthClient, ...] = ()
        if ids is not None and secrets is not None:
            clients = parse_clients(ids, secrets)
        elif ids is None and secrets is None and listed is not None:
            clients = listed_clients(listed)
        else:  # one of them is missing: the fields say which
            values.update({k: v for k, v in (("client_id", ids), ("client_secret", secrets)) if v is not None})
        if clients:
            values["client_id"], values["client_secret"] = clients[0].client_id, clients[0].client_secret
        settings = handler(values)
        settings._clients = clients
        return settings

    @property
    def clients(self) -> tuple[OAuthClient, ...]:
        """Every OAuth client, in the order configured; the first is `client_id`/`client_secret`."""
        return self._clients or (OAuthClient(self.client_id, self.client_secret),)  # built unvalidated

    @model_validator(mode="after")
    def _where(self) -> Settings:
        if self.region is None and self.api_url is None:
            raise ValueError("set GENESYS_REGION (e.g. eu-west-1) or GENESYS_API_URL")
        return self

    @property
    def api_base(self) -> str:
        if self.api_url:
            return self.api_url
        assert self.region is not None  # checked by _where
        return self.region.api_url

    @property
    def login_base(self) -> str:
        """The login host is the API host with `api.` made `login.`; a bare base (a simulator) serves both."""
        if self.login_url:
            return self.login_url
        if self.api_url:
            return self.api_url.replace("://api.", "://login.", 1)
        assert self.region is not None
        return self.region.login_url

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, dotenv_settings, YamlConfigSettingsSource(settings_cls)


for _name, _field in Settings.model_fields.items():
    ENV_NAMES[_name] = str(_field.validation_alias)


def _pop_setting(values: dict[str, Any], name: str) -> object | None:
    """A setting's raw value, gone from `values`: sources key it by its name or its variable."""
    found = [values.pop(key) for key in (name, ENV_NAMES[name]) if key in values]
    return found[0] if found else None


def load_settings(config_file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings; CLI `overrides` beat the environment, which beats `.env`, which beats the file.

    Every client secret is registered for redaction here, so that no log line can show one.
    """
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    settings = _validated(Settings, values) if config_file is None else _from_file(config_file, values)
    for client in settings.clients:
        logs.redact(client.client_secret.get_secret_value())
    return settings


def _from_file(config_file: Path, values: Mapping[str, Any]) -> Settings:
    if not config_file.is_file():
        raise ConfigError(f"--config: no such file: {config_file}")
    try:
        content = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {config_file}: cannot read it: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"--config {config_file}: malformed YAML{line}: {getattr(exc, 'problem', exc)}") from None
    if content is not None and not isinstance(content, dict):
        raise ConfigError(f"--config {config_file}: expected a mapping of setting: value at the top level")
    keys = set(content or {})
    unknown = sorted(keys - set(ENV_NAMES) - set(ENV_NAMES.values()) - FILE_ONLY)
    if unknown:
        raise ConfigError(f"--config {config_file}: unknown setting {unknown[0]!r}")
    if "clients" in keys and keys & {"client_id", "client_secret", ENV_NAMES["client_id"], ENV_NAMES["client_secret"]}:
        raise ConfigError(
            f"--config {config_file}: clients cannot be combined with a top-level client_id or client_secret; "
            "list every OAuth client under clients"
        )

    class FileSettings(Settings):
        model_config = SettingsConfigDict(yaml_file=config_file)

    return _validated(FileSettings, values)


def _validated(cls: type[Settings], values: Mapping[str, Any]) -> Settings:
    try:
        return cls(**values)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc)) from None
    except SettingsError as exc:  # a value a source could not even decode
        raise ConfigError(str(exc).replace('"', "")) from None


def describe_error(exc: ValidationError) -> str:
    """One line: the first problem, named by its environment variable, without the offending value."""
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = str(error["loc"][0]) if error["loc"] else ""
    name = ENV_NAMES.get(loc, loc.upper())
    if error["type"] == "missing":
        return f"{name}: required but not set"
    message = str(error["msg"]).removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    named = f"{name}: {message}" if name else message  # a check of several settings names them itself
    return named + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
