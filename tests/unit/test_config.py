"""Settings loading: defaults, precedence file < env < CLI, and one-line validation errors."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from jobbridge.addresses import is_loopback
from jobbridge.config import load_settings
from jobbridge.errors import ConfigError, UnknownSource
from jobbridge.redis_urls import parse_sentinel_url, redact_url
from jobbridge.settings import (
    AuthConfig,
    ProxyAuthConfig,
    ServerConfig,
    Settings,
    SourceConfig,
    TokenConfig,
    hash_token,
)

DIGEST = hashlib.sha256(b"s3cret-token").hexdigest()
SECRET = "x" * 32


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "jobbridge.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def load(path=None, env=None, **overrides) -> Settings:
    return load_settings(path, env=env or {}, overrides=overrides)


def error(path=None, env=None, **overrides) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, env, **overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


SOURCE = """
[[sources]]
name = "orders"
system = "autumn"
redis_url = "redis://127.0.0.1:6379/0"
"""


# -- defaults -----------------------------------------------------------------------------------


def test_load_without_file_gives_defaults():
    settings = load()
    assert settings == Settings()
    assert settings.server == ServerConfig()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert settings.server.prefix == "/admin"
    assert settings.server.read_only is False
    assert settings.server.insecure_no_auth is False
    assert settings.sources == ()
    assert settings.auth == AuthConfig()
    assert settings.auth.session_max_age_s == 8 * 3600
    assert settings.detect_url is None


def test_auth_disabled_by_default_enabled_by_token_or_proxy():
    assert not AuthConfig().enabled
    token = TokenConfig(name="a", role="viewer", token_sha256=DIGEST)
    assert AuthConfig(tokens=(token,)).enabled
    assert AuthConfig(proxy=ProxyAuthConfig(trusted_addresses=("127.0.0.1/32",))).enabled


def test_source_defaults_per_system(write):
    settings = load(
        write(
            """
            [[sources]]
            name = "a"
            system = "autumn"
            redis_url = "redis://h/0"
            [[sources]]
            name = "r"
            system = "rq"
            redis_url = "redis://h/1"
            [[sources]]
            name = "c"
            system = "celery"
            broker_url = "redis://h/2"
            """
        )
    )
    autumn, rq, celery = settings.sources
    assert autumn.key_prefix is None and autumn.effective_key_prefix == "autumn:jobs"
    assert rq.effective_key_prefix == "rq"
    assert celery.effective_key_prefix == ""
    assert celery.redis_url == "redis://h/2"
    assert autumn.queues is None
    assert autumn.jobbridge_prefix == "jobbridge:"
    assert celery.result_backend_url is None


def test_full_example_file(write):
    settings = load(
        write(
            f"""
            [server]
            host = "0.0.0.0"
            port = 9000
            prefix = "/jobs"
            read_only = true
            poll_interval_s = 5
            cache_ttl_s = 0
            allowed_hosts = ["Jobs.Example.com.", "10.0.0.5", "[::1]", "*"]

            [[sources]]
            name = "orders"
            system = "autumn"
            redis_url = "redis://127.0.0.1:6379/0"
            key_prefix = "shop:jobs"
            queues = ["critical", "default", "low"]

            [[sources]]
            name = "tasks"
            system = "celery"
            redis_url = "redis://127.0.0.1:6379/2"
            result_backend_url = "rediss://cache:6380/3"
            jobbridge_prefix = "jb:"

            [[auth.tokens]]
            name = "ops-bot"
            token_sha256 = "{DIGEST.upper()}"
            role = "operator"

            [auth.proxy]
            trusted_addresses = ["127.0.0.1", "10.0.0.0/8"]

            [auth]
            session_secret = "{SECRET}"
            session_max_age_s = 600
            max_failed_sign_ins = 0
            """
        )
    )
    assert settings.server == ServerConfig(
        host="0.0.0.0",
        port=9000,
        prefix="/jobs",
        read_only=True,
        poll_interval_s=5.0,
        cache_ttl_s=0.0,
        allowed_hosts=("jobs.example.com", "10.0.0.5", "[::1]", "*"),
    )
    orders, tasks = settings.sources
    assert orders == SourceConfig(
        name="orders",
        system="autumn",
        redis_url="redis://127.0.0.1:6379/0",
        key_prefix="shop:jobs",
        queues=("critical", "default", "low"),
    )
    assert tasks.result_backend_url == "rediss://cache:6380/3"
    assert tasks.jobbridge_prefix == "jb:"
    assert settings.auth.tokens == (
        TokenConfig(name="ops-bot", role="operator", token_sha256=DIGEST),
    )
    assert settings.auth.session_secret == SECRET
    assert settings.auth.session_max_age_s == 600
    assert settings.auth.max_failed_sign_ins == 0
    assert settings.source("tasks") is tasks


def test_source_lookup_unknown_raises_unknown_source():
    settings = Settings()
    with pytest.raises(UnknownSource, match="'nope'"):
        settings.source("nope")


# -- precedence ---------------------------------------------------------------------------------


SERVER_FILE = f"""
[server]
host = "10.1.1.1"
port = 7000
prefix = "/file"
read_only = false
[auth]
session_secret = "{"f" * 20}"
"""

ENV = {
    "JOBBRIDGE_HOST": "10.2.2.2",
    "JOBBRIDGE_PORT": "7100",
    "JOBBRIDGE_PREFIX": "/env",
    "JOBBRIDGE_READ_ONLY": "yes",
    "JOBBRIDGE_SESSION_SECRET": "e" * 20,
}


def test_file_beats_defaults(write):
    settings = load(write(SERVER_FILE))
    assert (settings.server.host, settings.server.port, settings.server.prefix) == (
        "10.1.1.1",
        7000,
        "/file",
    )
    assert settings.auth.session_secret == "f" * 20


def test_env_beats_file(write):
    settings = load(write(SERVER_FILE), env=ENV)
    assert settings.server.host == "10.2.2.2"
    assert settings.server.port == 7100
    assert settings.server.prefix == "/env"
    assert settings.server.read_only is True
    assert settings.auth.session_secret == "e" * 20


def test_cli_beats_env(write):
    settings = load(
        write(SERVER_FILE),
        env=ENV,
        host="10.3.3.3",
        port=7200,
        prefix="/cli",
        read_only=False,
        insecure_no_auth=True,
    )
    assert settings.server.host == "10.3.3.3"
    assert settings.server.port == 7200
    assert settings.server.prefix == "/cli"
    assert settings.server.read_only is False
    assert settings.server.insecure_no_auth is True


def test_none_overrides_are_ignored(write):
    settings = load(write(SERVER_FILE), env=ENV, host=None, port=None, read_only=None)
    assert settings.server.host == "10.2.2.2"
    assert settings.server.port == 7100
    assert settings.server.read_only is True


def test_empty_env_values_count_as_unset(write):
    settings = load(write(SERVER_FILE), env={"JOBBRIDGE_HOST": "", "JOBBRIDGE_PORT": ""})
    assert settings.server.host == "10.1.1.1"
    assert settings.server.port == 7000


def test_env_config_names_the_file(write):
    path = write(SERVER_FILE)
    assert load(env={"JOBBRIDGE_CONFIG": str(path)}).server.port == 7000


def test_explicit_path_beats_env_config(write):
    env_file = write("[server]\nport = 1111\n", name="env.toml")
    cli_file = write("[server]\nport = 2222\n", name="cli.toml")
    assert load(cli_file, env={"JOBBRIDGE_CONFIG": str(env_file)}).server.port == 2222


def test_env_redis_url_overridden_by_cli():
    settings = load(env={"JOBBRIDGE_REDIS_URL": "redis://env/0"}, redis_url="redis://cli/0")
    assert settings.detect_url == "redis://cli/0"


@pytest.mark.parametrize(
    ("word", "expected"),
    [("1", True), ("true", True), ("YES", True), ("0", False), ("False", False), ("no", False)],
)
def test_env_read_only_words(word, expected):
    assert load(env={"JOBBRIDGE_READ_ONLY": word}).server.read_only is expected


@pytest.mark.production_read_timeout
def test_read_timeout_from_file_env_and_default(write):
    assert load().server.read_timeout_s == 2.0
    path = write("[server]\nread_timeout_s = 0.5\n")
    assert load(path).server.read_timeout_s == 0.5
    assert load(path, env={"JOBBRIDGE_READ_TIMEOUT_S": "7"}).server.read_timeout_s == 7.0


# -- auto-detect and redis_url override ---------------------------------------------------------


def test_redis_url_without_sources_means_detect():
    settings = load(redis_url="redis://127.0.0.1:6379/0")
    assert settings.sources == ()
    assert settings.detect_url == "redis://127.0.0.1:6379/0"


def test_env_redis_url_without_sources_means_detect():
    settings = load(env={"JOBBRIDGE_REDIS_URL": "unix:///tmp/redis.sock"})
    assert settings.detect_url == "unix:///tmp/redis.sock"


def test_redis_url_replaces_url_of_single_source(write):
    settings = load(write(SOURCE), redis_url="redis://other:6379/5")
    assert settings.detect_url is None
    (source,) = settings.sources
    assert source.name == "orders"
    assert source.redis_url == "redis://other:6379/5"


def test_redis_url_with_several_sources_is_an_error(write):
    path = write(SOURCE + SOURCE.replace('"orders"', '"billing"'))
    assert error(path, redis_url="redis://other/0").startswith("--redis: ")
    assert error(path, env={"JOBBRIDGE_REDIS_URL": "redis://o/0"}).startswith(
        "JOBBRIDGE_REDIS_URL: "
    )


# -- tokens and proxy ---------------------------------------------------------------------------


def test_hash_token_is_sha256_hex():
    assert hash_token("s3cret-token") == DIGEST
    assert len(hash_token("")) == 64


def test_plain_token_is_hashed_at_load(write):
    settings = load(
        write(
            """
            [[auth.tokens]]
            name = "local"
            token = "s3cret-token"
            role = "viewer"
            """
        )
    )
    (token,) = settings.auth.tokens
    assert token.token_sha256 == DIGEST
    assert "s3cret-token" not in repr(settings)
    assert token.matches("s3cret-token")
    assert not token.matches("wrong")
    assert settings.auth.token_for("s3cret-token") is token
    assert settings.auth.token_for("wrong") is None


def test_proxy_cidrs_parsed_and_matched(write):
    settings = load(
        write(
            """
            [auth.proxy]
            trusted_addresses = ["127.0.0.1", "10.0.0.0/8", "192.168.1.7/24", "::1"]
            user_header = "X-Auth-Request-User"
            operator_groups = ["admins", "ops"]
            viewer_groups = ["staff"]
            """
        )
    )
    proxy = settings.auth.proxy
    assert proxy is not None
    assert proxy.trusted_addresses == ("127.0.0.1/32", "10.0.0.0/8", "192.168.1.0/24", "::1/128")
    assert proxy.user_header == "X-Auth-Request-User"
    assert proxy.groups_header == "X-Forwarded-Groups"
    assert proxy.operator_groups == ("admins", "ops")
    assert proxy.viewer_groups == ("staff",)
    assert settings.auth.enabled
    assert proxy.is_trusted("10.20.30.40")
    assert proxy.is_trusted("::ffff:127.0.0.1")
    assert proxy.is_trusted("192.168.1.200")
    assert proxy.is_trusted("::1")
    assert not proxy.is_trusted("11.0.0.1")
    assert not proxy.is_trusted("not-an-ip")


def test_proxy_defaults(write):
    proxy = load(write('[auth.proxy]\ntrusted_addresses = ["127.0.0.1"]\n')).auth.proxy
    assert proxy == ProxyAuthConfig(trusted_addresses=("127.0.0.1/32",))
    assert proxy.operator_groups == ("jobbridge-operators",)
    assert proxy.viewer_groups == ()


# -- prefix normalisation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/admin", "/admin"),
        ("admin", "/admin"),
        ("/admin/", "/admin"),
        ("/", ""),
        ("", ""),
        ("/ops/jobs", "/ops/jobs"),
    ],
)
def test_prefix_normalised(raw, expected):
    assert load(prefix=raw).server.prefix == expected


@pytest.mark.parametrize("raw", ["//admin", "/ad min", "/admin?x=1", "/../x"])
def test_prefix_invalid(raw):
    assert error(prefix=raw).startswith("--prefix: must be a URL path")


# -- loopback -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
)
def test_is_loopback_true(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.1", "example.com", "128.0.0.1"])
def test_is_loopback_false(host):
    assert not is_loopback(host)


# -- validation errors --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.toml"
    assert error(missing) == f"config file not found: {missing}"


def test_missing_file_from_env_config(tmp_path):
    missing = tmp_path / "nope.toml"
    assert error(env={"JOBBRIDGE_CONFIG": str(missing)}) == f"config file not found: {missing}"


def test_toml_syntax_error_names_file(write):
    path = write("[server]\nport = \n")
    message = error(path)
    assert message.startswith(f"config file {path}: invalid TOML: ")
    assert "line 2" in message


def test_invalid_utf8(write, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'[server]\nhost = "\xff"\n')
    assert error(path).startswith(f"config file {path}: not valid UTF-8")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("serverr = 1", "serverr: unknown key (did you mean server?)"),
        ("[server]\nprot = 1", "server.prot: unknown key (did you mean port?)"),
        (SOURCE + "redis_ur = 'x'", "sources[0].redis_ur: unknown key (did you mean redis_url?)"),
        ("[auth]\nsecret = 'x'", "auth.secret: unknown key"),
        ("[auth.proxy]\ntrusted = []", "auth.proxy.trusted: unknown key"),
        (
            "[[auth.tokens]]\nname='a'\nrole='viewer'\nsha256='x'",
            "auth.tokens[0].sha256: unknown key",
        ),
    ],
)
def test_unknown_keys(write, text, expected):
    assert error(write(text)).startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nport = 'abc'", "server.port: must be an integer 1..65535 (got 'abc')"),
        ("[server]\nport = 70000", "server.port: must be an integer 1..65535 (got 70000)"),
        ("[server]\nport = true", "server.port: must be an integer 1..65535 (got True)"),
        ("[server]\nread_only = 'maybe'", "server.read_only: must be a boolean"),
        ("[server]\nhost = ''", "server.host: must be a host name or address"),
        ("[server]\npoll_interval_s = 0", "server.poll_interval_s: must be a number > 0"),
        ("[server]\ncache_ttl_s = -1", "server.cache_ttl_s: must be a number >= 0"),
        ("[server]\nread_timeout_s = 0", "server.read_timeout_s: must be a number > 0"),
        ("[server]\nread_timeout_s = 'soon'", "server.read_timeout_s: must be a number > 0"),
        ("[server]\nread_timeout_s = inf", "server.read_timeout_s: must be a number > 0"),
        ("server = 3", "server: must be a table"),
        ("[sources]\nname = 'x'", "sources: must be an array of tables"),
        ("[auth]\nsession_max_age_s = 0", "auth.session_max_age_s: must be a positive integer"),
        ("[auth]\nsession_secret = 'short'", "auth.session_secret: must be at least 16 characters"),
        ("[auth]\ntokens = 'x'", "auth.tokens: must be an array of tables"),
        ("[auth]\nmax_failed_sign_ins = -1", "auth.max_failed_sign_ins: must be an integer >= 0"),
        ("[server]\nallowed_hosts = 'a'", "server.allowed_hosts: must be an array of strings"),
        (
            "[server]\nallowed_hosts = ['ok', 'http://x']",
            "server.allowed_hosts[1]: must be a host name or address without port or scheme",
        ),
        ("[server]\nallowed_hosts = ['x:80']", "server.allowed_hosts[0]: must be a host name"),
        ("[server]\nallowed_hosts = ['']", "server.allowed_hosts[0]: must not be empty"),
    ],
)
def test_server_and_shape_errors(write, text, expected):
    assert error(write(text)).startswith(expected)


def source(**fields: object) -> str:
    base: dict[str, object] = {"name": "orders", "system": "autumn", "redis_url": "redis://h/0"}
    base.update(fields)
    lines = [f"{key} = {value!r}" for key, value in base.items() if value is not None]
    return "[[sources]]\n" + "\n".join(lines).replace("'", '"') + "\n"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"system": "sidekiq"},
            "sources[1].system: must be one of autumn, rq, celery (got 'sidekiq')",
        ),
        ({"system": None}, "sources[1].system: required key is missing"),
        ({"name": None}, "sources[1].name: required key is missing"),
        ({"name": "has space"}, "sources[1].name: must be 1-64 characters"),
        ({"name": "x" * 65}, "sources[1].name: must be 1-64 characters"),
        ({"name": "counters"}, "sources[1].name: 'counters' is reserved"),
        ({"name": ".."}, "sources[1].name: '..' is reserved"),
        ({"name": "first"}, "sources[1].name: duplicate source name 'first' (also sources[0])"),
        ({"redis_url": None}, "sources[1].redis_url: required key is missing"),
        (
            {"redis_url": "http://h/0"},
            "sources[1].redis_url: must start with redis://, rediss:// or unix://",
        ),
        ({"redis_url": 5}, "sources[1].redis_url: must be a string"),
        ({"queues": []}, "sources[1].queues: must not be empty"),
        ({"queues": ["a", "a"]}, "sources[1].queues[1]: duplicate queue 'a'"),
        ({"queues": ["a", 3]}, "sources[1].queues[1]: must be a string"),
        ({"queues": "a"}, "sources[1].queues: must be an array of strings"),
        ({"key_prefix": "autumn:jobs:"}, "sources[1].key_prefix: must be non-empty"),
        ({"key_prefix": ""}, "sources[1].key_prefix: must be non-empty"),
        ({"jobbridge_prefix": ""}, "sources[1].jobbridge_prefix: must not be empty"),
        (
            {"jobbridge_prefix": "autumn:jobs:jb:"},
            "sources[1].jobbridge_prefix: must not lie inside",
        ),
        ({"broker_url": "redis://h/1"}, "sources[1].broker_url: only applies to celery sources"),
        (
            {"result_backend_url": "redis://h/1"},
            "sources[1].result_backend_url: only applies to celery",
        ),
        (
            {"system": "celery", "broker_url": "redis://h/1"},
            "sources[1].broker_url: give redis_url or broker_url, not both",
        ),
        (
            {"system": "celery", "result_backend_url": "mysql://h/1"},
            "sources[1].result_backend_url: must start with redis://",
        ),
    ],
)
def test_source_errors(write, fields, expected):
    path = write(source(name="first") + source(**fields))
    assert error(path).startswith(expected)


def test_url_error_hides_password(write):
    message = error(write(source(redis_url="http://user:hunter2@h/0")))
    assert "hunter2" not in message
    assert "'http://***@h/0'" in message


def test_celery_key_prefix_may_be_empty(write):
    (celery,) = load(write(source(system="celery", key_prefix=""))).sources
    assert celery.key_prefix == ""
    assert celery.effective_key_prefix == ""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("name='a'\nrole='admin'\ntoken='t'", "auth.tokens[0].role: must be viewer or operator"),
        ("name='a'\ntoken='t'", "auth.tokens[0].role: required key is missing"),
        ("role='viewer'\ntoken='t'", "auth.tokens[0].name: required key is missing"),
        ("name='a'\nrole='viewer'", "auth.tokens[0].token_sha256: required key is missing"),
        (
            "name='a'\nrole='viewer'\ntoken='t'\ntoken_sha256='" + DIGEST + "'",
            "auth.tokens[0]: give token or token_sha256, not both",
        ),
        ("name='a'\nrole='viewer'\ntoken='has space'", "auth.tokens[0].token: must be non-empty"),
        ("name='a'\nrole='viewer'\ntoken=''", "auth.tokens[0].token: must be non-empty"),
    ],
)
def test_token_errors(write, body, expected):
    assert error(write("[[auth.tokens]]\n" + body + "\n")).startswith(expected)


@pytest.mark.parametrize("digest", ["abc", DIGEST[:-1] + "g", DIGEST + "0", "plain-token-here"])
def test_token_sha256_must_be_64_hex(write, digest):
    message = error(write(f"[[auth.tokens]]\nname='a'\nrole='viewer'\ntoken_sha256='{digest}'\n"))
    assert message == "auth.tokens[0].token_sha256: must be 64 hex characters (a SHA-256 digest)"
    assert digest not in message


def test_duplicate_tokens(write):
    twice = "[[auth.tokens]]\nname='{}'\nrole='viewer'\ntoken='{}'\n"
    assert error(write(twice.format("a", "t1") + twice.format("a", "t2"))).startswith(
        "auth.tokens[1].name: duplicate token name 'a'"
    )
    assert error(write(twice.format("a", "t1") + twice.format("b", "t1"))) == (
        "auth.tokens[1]: same token as auth.tokens[0]"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("user_header = 'X'", "auth.proxy.trusted_addresses: required key is missing"),
        ("trusted_addresses = []", "auth.proxy.trusted_addresses: must list at least one"),
        (
            "trusted_addresses = ['127.0.0.1', '10.0.0.0/33']",
            "auth.proxy.trusted_addresses[1]: must be an IP address or CIDR network"
            " (got '10.0.0.0/33')",
        ),
        ("trusted_addresses = ['proxy.local']", "auth.proxy.trusted_addresses[0]: must be an IP"),
        (
            "trusted_addresses = ['::1']\nuser_header = 'X User'",
            "auth.proxy.user_header: must be an HTTP header name",
        ),
        (
            "trusted_addresses = ['::1']\noperator_groups = 'ops'",
            "auth.proxy.operator_groups: must be an array of strings",
        ),
    ],
)
def test_proxy_errors(write, body, expected):
    assert error(write("[auth.proxy]\n" + body + "\n")).startswith(expected)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"JOBBRIDGE_PORT": "abc"}, "JOBBRIDGE_PORT: must be an integer 1..65535 (got 'abc')"),
        ({"JOBBRIDGE_PORT": "0"}, "JOBBRIDGE_PORT: must be an integer 1..65535 (got '0')"),
        ({"JOBBRIDGE_READ_ONLY": "maybe"}, "JOBBRIDGE_READ_ONLY: must be a boolean"),
        ({"JOBBRIDGE_READ_TIMEOUT_S": "-1"}, "JOBBRIDGE_READ_TIMEOUT_S: must be a number > 0"),
        ({"JOBBRIDGE_PREFIX": "/a b"}, "JOBBRIDGE_PREFIX: must be a URL path"),
        (
            {"JOBBRIDGE_REDIS_URL": "localhost:6379"},
            "JOBBRIDGE_REDIS_URL: must start with redis://",
        ),
        ({"JOBBRIDGE_SESSION_SECRET": "short"}, "JOBBRIDGE_SESSION_SECRET: must be at least 16"),
    ],
)
def test_env_errors(env, expected):
    assert error(env=env).startswith(expected)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"port": "abc"}, "--port: must be an integer 1..65535 (got 'abc')"),
        ({"port": 0}, "--port: must be an integer 1..65535 (got 0)"),
        ({"read_only": "maybe"}, "--read-only: must be a boolean"),
        ({"insecure_no_auth": "maybe"}, "--insecure-no-auth: must be a boolean"),
        ({"redis_url": "http://x"}, "--redis: must start with redis://"),
        ({"hots": "x"}, "overrides: unknown key 'hots' (did you mean host?)"),
    ],
)
def test_override_errors(overrides, expected):
    assert error(**overrides).startswith(expected)


def test_invalid_file_value_is_reported_even_when_env_overrides_it(write):
    path = write("[server]\nport = 'abc'\n")
    assert error(path, env={"JOBBRIDGE_PORT": "9000"}).startswith("server.port: ")


def test_cli_port_given_as_string_is_parsed():
    assert load(port="9001").server.port == 9001


# -- Redis behind Sentinel ----------------------------------------------------------------------

SENTINELS = "sentinel://:pw@s1:26380;sentinel://s2/3"


def test_sentinel_source_names_its_master(write):
    (orders,) = load(write(source(redis_url=SENTINELS, sentinel_master="mymaster"))).sources
    assert (orders.redis_url, orders.sentinel_master, orders.sentinel_password) == (
        SENTINELS,
        "mymaster",
        None,
    )
    in_url = load(write(source(redis_url=SENTINELS + "?master=mymaster"))).sources[0]
    assert in_url.sentinel_master == "mymaster"


def test_sentinel_url_parts():
    parsed = parse_sentinel_url("sentinel://u:p%40ss@S1:26380;sentinel://[::1]/3?master=m")
    assert parsed.sentinels == (("s1", 26380), ("::1", 26379))
    assert (parsed.master, parsed.db, parsed.username, parsed.password) == ("m", 3, "u", "p@ss")
    # kombu's habit of repeating the password and database on every address is accepted.
    repeated = parse_sentinel_url("sentinel://:pw@h1/2;sentinel://:pw@h2/2")
    assert (repeated.password, repeated.db) == ("pw", 2)


def test_sentinel_password_is_kept_out_of_repr(write):
    text = source(redis_url=SENTINELS, sentinel_master="m", sentinel_password="sentinel-pw")
    (orders,) = load(write(text)).sources
    assert orders.sentinel_password == "sentinel-pw"
    assert "sentinel-pw" not in repr(orders)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"redis_url": SENTINELS},
            "sources[1].sentinel_master: required for a sentinel:// redis_url",
        ),
        (
            {"redis_url": SENTINELS + "?master=a", "sentinel_master": "b"},
            "sources[1].sentinel_master: 'b' differs from ?master=a in redis_url",
        ),
        (
            {"sentinel_master": "mymaster"},
            "sources[1].sentinel_master: only applies to a sentinel:// redis_url",
        ),
        (
            {"sentinel_password": "pw"},
            "sources[1].sentinel_password: only applies to a sentinel:// redis_url",
        ),
        (
            {"redis_url": SENTINELS, "sentinel_master": "my master"},
            "sources[1].sentinel_master: must be the master's name",
        ),
        (
            {"redis_url": "sentinel://s1;redis://s2/0", "sentinel_master": "m"},
            "sources[1].redis_url: each ';'-separated address must be sentinel://host[:port]",
        ),
        (
            {"redis_url": "sentinel://s1:port", "sentinel_master": "m"},
            "sources[1].redis_url: not a valid sentinel:// address",
        ),
        (
            {"redis_url": "sentinel://s1/x", "sentinel_master": "m"},
            "sources[1].redis_url: the database must be a number",
        ),
        (
            {"redis_url": "sentinel://s1/0?socket_timeout=1", "sentinel_master": "m"},
            "sources[1].redis_url: unknown option 'socket_timeout'",
        ),
        (
            {"redis_url": "sentinel://s1/1;sentinel://s2/2", "sentinel_master": "m"},
            "sources[1].redis_url: the sentinel addresses give different dbs",
        ),
        (
            {"redis_url": "sentinel://s1/0?master=", "sentinel_master": "m"},
            "sources[1].redis_url (?master=): must be the master's name",
        ),
    ],
)
def test_sentinel_source_errors(write, fields, expected):
    path = write(source(name="first") + source(**fields))
    assert error(path).startswith(expected)


def test_sentinel_url_errors_hide_every_password(write):
    message = error(write(source(redis_url="sentinel://:a;b@s1;sentinel://:c@s2:x")))
    assert not any(secret in message for secret in ("a;b", ":c@"))
    assert "sentinel://***@s1;sentinel://***@s2:x" in message


def test_redact_url_hides_each_sentinel_password():
    assert redact_url("sentinel://:pw@h1;sentinel://u:pw@h2:26380/1?master=m") == (
        "sentinel://***@h1;sentinel://***@h2:26380/1?master=m"
    )
    assert redact_url("sentinel://:p;w@h1;sentinel://h2/0") == "sentinel://***@h1;sentinel://h2/0"
    assert redact_url("redis://:p;w@h/0") == "redis://***@h/0"  # as before


def test_redis_flag_sentinel_url_needs_a_master_to_detect():
    url = "sentinel://s1:26379/0"
    assert (
        error(redis_url=url) == "--redis: a sentinel:// URL needs the master's name: ?master=<name>"
    )
    assert error(env={"JOBBRIDGE_REDIS_URL": url}).startswith("JOBBRIDGE_REDIS_URL: ")
    assert load(redis_url=url + "?master=m").detect_url == url + "?master=m"


def test_redis_flag_replaces_the_url_of_a_sentinel_source(write):
    text = source(
        redis_url=SENTINELS,
        sentinel_master="m",
        sentinel_password="spw",
        queues=["a", "b"],
        key_prefix="app:jobs",
        jobbridge_prefix="jb:",
    )
    path = write(text)
    (kept,) = load(path, redis_url="sentinel://other:1/2").sources
    assert (kept.redis_url, kept.sentinel_master, kept.sentinel_password) == (
        "sentinel://other:1/2",
        "m",
        "spw",
    )
    assert (kept.queues, kept.key_prefix, kept.jobbridge_prefix) == (("a", "b"), "app:jobs", "jb:")
    (renamed,) = load(path, redis_url="sentinel://other:1/2?master=n").sources
    assert renamed.sentinel_master == "n"
    (plain,) = load(path, redis_url="redis://other/0").sources
    assert (plain.sentinel_master, plain.sentinel_password) == (None, None)
    assert plain.queues == ("a", "b")
    # A plain source given a sentinel URL without ?master= has no master to use.
    assert error(write(source()), redis_url="sentinel://other:1/2").startswith(
        "--redis: a sentinel:// URL needs the master's name: ?master=<name> (or sentinel_master"
    )
