"""The Dockerfile and docker-compose.yml, without a Docker engine: every file they reference exists,
the services find each other, and the Dockerfile's install step works in a fresh virtualenv."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
import yaml

from tests.conftest import REPO_ROOT, free_port
from tests.test_webconfig import GOOD, PASSWORD, bcrypt_hash, client_context, https_get, write_pair, write_web_config

DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
CONFIG_PATH = "/etc/livestream-exporter/config.yaml"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


def dockerignore() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str) -> bool:
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in dockerignore():
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(Path(prefix).name, bare)
            ):
                return True
    return False


def copy_sources() -> list[tuple[str, str]]:
    """(source in the build context, destination) of every COPY that reads the context."""
    found = []
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, destination = shlex.split(rest)
            found.extend((source, destination) for source in sources)
    return found


def test_dockerfile_copies_only_files_that_exist_and_are_not_dockerignored() -> None:
    for source, _ in copy_sources():
        assert (REPO_ROOT / source).exists(), source
        assert not ignored(source), f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_caches_and_tests_out_of_the_image() -> None:
    assert ignored("exporter/__pycache__/cli.cpython-311.pyc")
    assert ignored("tests/test_docker.py")
    assert not ignored("exporter/cli.py")


def test_image_runs_as_non_root_on_a_slim_python_with_health_check_port_and_state_dir() -> None:
    final = stages()[-1]
    assert re.fullmatch(r"python:3\.1[1-9]-slim", final[0][1])
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "9877") in final
    assert healthcheck_command() == ["livestream-exporter-entrypoint", "--health-probe"]
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert "XDG_STATE_HOME=/var/lib" in env, "the default state_dir must be /var/lib/livestream-exporter"
    assert ("VOLUME", "/var/lib/livestream-exporter") in final
    assert CONFIG_PATH in (REPO_ROOT / "docker" / "entrypoint.sh").read_text()


def healthcheck_command() -> list[str]:
    healthcheck = next(rest for keyword, rest in stages()[-1] if keyword == "HEALTHCHECK")
    return json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())


def test_the_image_user_and_group_10001_both_exist_as_user_says() -> None:
    final = stages()[-1]
    (run,) = [rest for keyword, rest in final if keyword == "RUN" and "useradd" in rest]
    groupadd = next(part for part in run.split("&&") if "groupadd" in part).split()
    useradd = next(part for part in run.split("&&") if "useradd" in part).split()
    assert groupadd[groupadd.index("--gid") + 1] == "10001"
    assert useradd[useradd.index("--uid") + 1] == "10001" and useradd[useradd.index("--gid") + 1] == "10001"
    assert "--user-group" not in useradd, "it would create a group with another id"
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users[-1] == "10001:10001"


def test_compose_files_exist_and_services_reach_each_other() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"exporter", "prometheus", "alertmanager", "grafana"}
    assert (REPO_ROOT / services["exporter"]["build"] / "Dockerfile").is_file()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                assert (REPO_ROOT / host).exists(), f"{name}: {host}"
    prometheus = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["exporter:9877"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    datasources = yaml.safe_load((REPO_ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


def test_compose_mounts_every_rule_file_prometheus_loads() -> None:
    prometheus = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.yml").read_text())
    mounts = dict(volume.split(":")[1::-1] for volume in COMPOSE["services"]["prometheus"]["volumes"])
    for rule_file in prometheus["rule_files"]:
        assert mounts.get(f"/etc/prometheus/{rule_file}") == f"./prometheus/{rule_file}"
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"


def test_compose_mounts_the_grafana_provisioning_and_the_dashboards_where_the_provider_looks() -> None:
    mounts = dict(volume.split(":")[1::-1] for volume in COMPOSE["services"]["grafana"]["volumes"])
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provider = yaml.safe_load((REPO_ROOT / "grafana/provisioning/dashboards/livestream.yml").read_text())
    assert mounts[provider["providers"][0]["options"]["path"]] == "./grafana/dashboards"
    home = COMPOSE["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO_ROOT / "grafana" / "dashboards" / Path(home).name).is_file()


def _dockerignored(directory: str, names: list[str]) -> list[str]:
    return [name for name in names if ignored(os.path.relpath(Path(directory) / name, REPO_ROOT))]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage replayed: its COPYs into a scratch root, then its RUN with the image's
    absolute paths moved under that root. `--no-cache-dir` (image size only) is dropped so pip
    may use the local cache. Returns the virtualenv's bin directory."""
    root = tmp_path_factory.mktemp("image")
    build = stages()[0]
    workdir = root / next(rest for keyword, rest in build if keyword == "WORKDIR").lstrip("/")
    workdir.mkdir(parents=True)
    runs = []
    for keyword, rest in build:
        if keyword == "COPY":
            *sources, destination = shlex.split(rest)
            target = (workdir if not destination.startswith("/") else root) / destination.lstrip("/")
            for source in sources:
                if (REPO_ROOT / source).is_dir():  # Docker copies a directory's contents
                    shutil.copytree(REPO_ROOT / source, target, ignore=_dockerignored)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(REPO_ROOT / source, target / Path(source).name)
        elif keyword == "RUN":
            runs.append(rest)
    assert len(runs) == 1, "the build stage installs with one RUN"
    command = runs[0].replace("--no-cache-dir", "").replace("/opt/", f"{root}/opt/")
    command = re.sub(r"^python\b", shlex.quote(sys.executable), command)
    done = subprocess.run(["sh", "-c", command], cwd=workdir, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    env_path = next(rest for keyword, rest in stages()[-1] if keyword == "ENV" and rest.startswith("PATH="))
    bin_dir = env_path.split("=", 1)[1].split(":")[0]
    return root / bin_dir.lstrip("/")


def _env(bin_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "LIVESTREAM_EXPORTER_CONFIG")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_installed_image_prints_its_version(installed: Path) -> None:
    from exporter import __version__

    done = subprocess.run(
        [str(installed / "livestream-exporter"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(installed),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"livestream-exporter {__version__}"


def test_installed_image_checks_a_config(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("sources:\n  - name: gcore-prod\n    provider: gcore\n    api_key: ${GCORE_API_KEY}\n")
    done = subprocess.run(
        [str(installed / "livestream-exporter"), "--check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(installed, GCORE_API_KEY="123$abcdefgh"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "OK, 1 source" in done.stdout


def _entrypoint(installed: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(REPO_ROOT / "docker" / "entrypoint.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(installed, **env),
        cwd=tmp_path,
    )


def test_entrypoint_without_a_config_starts_the_demo(installed: Path, tmp_path: Path) -> None:
    if Path(CONFIG_PATH).exists():
        pytest.skip(f"{CONFIG_PATH} exists on this machine")
    done = _entrypoint(installed, tmp_path, "--check-config")
    assert done.returncode == 0, done.stderr
    assert "starting the demo" in done.stderr
    assert done.stdout.startswith("<demo>: OK")


def test_entrypoint_uses_the_config_it_is_told_about(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("sources:\n  - name: gcore-prod\n    provider: gcore\n    api_key: key-0123456\n")
    by_env = _entrypoint(installed, tmp_path, "--check-config", LIVESTREAM_EXPORTER_CONFIG=str(config))
    by_flag = _entrypoint(installed, tmp_path, "--check-config", "--config", str(config))
    for done in (by_env, by_flag):
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{config}: OK, 1 source"


def test_healthcheck_probes_the_exporter_the_entrypoint_started_with_tls_and_basic_auth(
    installed: Path, tmp_path: Path
) -> None:
    ca = trustme.CA()
    write_pair(ca, tmp_path)
    web_config = write_web_config(tmp_path, GOOD.replace("{hash}", bcrypt_hash(PASSWORD)))
    port = free_port()
    env = _env(installed, TMPDIR=str(tmp_path))
    entrypoint = ["sh", str(REPO_ROOT / "docker" / "entrypoint.sh")]
    healthcheck = [*entrypoint, *healthcheck_command()[1:]]
    with (tmp_path / "exporter.log").open("wb") as log:
        exporter = subprocess.Popen(
            [*entrypoint, "--demo", f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={web_config}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        answered = wait_for(lambda: https_get(port, "/-/healthy", client_context(ca))[0], exporter)
        assert answered == 401, "basic auth is on, and the probe has no password"
        healthy = subprocess.run(healthcheck, capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert healthy.stdout.strip() == f"healthy: https://127.0.0.1:{port}/-/healthy answered 401"
    finally:
        exporter.terminate()
        exporter.wait(timeout=30)
    gone = subprocess.run(healthcheck, capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)
    assert gone.returncode == 1 and gone.stdout.startswith("unhealthy: https://127.0.0.1:"), gone.stdout


def wait_for(answer: Callable[[], int], process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """The first answer of a server that is starting (bounded; fails if the process exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            return answer()
        except (OSError, ssl.SSLError):
            time.sleep(0.1)
    raise AssertionError(f"no answer within {timeout}s")
