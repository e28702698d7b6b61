"""The configuration identity replicas compare: the sources, never their secrets."""

from __future__ import annotations

from jobbridge.settings import Settings, SourceConfig
from jobbridge.web.config_identity import config_identity


def _settings(*sources: SourceConfig) -> Settings:
    return Settings(sources=sources)


def test_same_sources_same_identity_whatever_the_passwords() -> None:
    a = _settings(SourceConfig(name="o", system="rq", redis_url="redis://:pw1@h:6379/0"))
    b = _settings(SourceConfig(name="o", system="rq", redis_url="redis://:pw2@h:6379/0"))
    assert config_identity(a) == config_identity(b)
    assert "pw1" not in config_identity(a)


def test_other_names_systems_urls_or_prefixes_differ() -> None:
    base = SourceConfig(name="o", system="rq", redis_url="redis://h:6379/0")
    variants = [
        SourceConfig(name="p", system="rq", redis_url="redis://h:6379/0"),
        SourceConfig(name="o", system="celery", redis_url="redis://h:6379/0"),
        SourceConfig(name="o", system="rq", redis_url="redis://h:6379/1"),
        SourceConfig(name="o", system="rq", redis_url="redis://h:6379/0", key_prefix="x"),
    ]
    identities = {config_identity(_settings(s)) for s in [base, *variants]}
    assert len(identities) == 5


def test_serve_redis_is_named_by_its_url_whatever_detection_found() -> None:
    """Sources ``--redis`` detected grow in the background: the identity does not follow them,
    so processes started before and after a system appeared stay each other's replicas."""
    url = "redis://:pw@h:6379/0"
    rq = SourceConfig(name="rq", system="rq", redis_url=url)
    autumn = SourceConfig(name="autumn", system="autumn", redis_url=url)
    early = Settings(detect_url=url, sources=(autumn,))
    late = Settings(detect_url=url, sources=(autumn, rq))
    assert config_identity(early) == config_identity(late)
    assert config_identity(early) != config_identity(Settings(detect_url="redis://h:6379/1"))
    assert config_identity(early) == config_identity(Settings(detect_url="redis://:x@h:6379/0"))
    # a file naming the same sources is another deployment
    assert config_identity(late) != config_identity(Settings(sources=(autumn, rq)))
