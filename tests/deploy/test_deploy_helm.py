"""The Helm chart at k8s/chatserver, as an operator installs, scales and upgrades it.

No cluster runs here. The chart is linted and rendered by a real Helm v4 engine (PyPI
helm-python-sdk: Helm's Go SDK as a bundled library, no helm binary, no network), with the value
sets operators use; Helm validates the values against values.schema.json while rendering. Every
rendered manifest is validated against the Kubernetes OpenAPI schemas that PyPI kubernetes-validate
ships offline (strict: unknown fields fail), for the oldest Kubernetes the chart claims and the newest
schema shipped. The assertions tie the manifests to the app itself: probes, port, variables, secrets.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from typing import Any

import helm_python as helm
import httpx
import kubernetes_validate
import pytest
import uvicorn.config
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version

from chatserver.cli import _parser as cli_parser
from chatserver.settings import Environment, Settings, SettingsError
from tests.deploy.test_deploy_dockerfile import app_env_names, app_route_paths, image_serve_port, image_user
from tests.support.harness import ROOT, ServerProcess

CHART = ROOT / "k8s" / "chatserver"
RELEASE = "chat"
NAMESPACE = "altzone"
FULLNAME = f"{RELEASE}-chatserver"
SECRET_VARIABLES = ("JWT_SECRET", "MONGODB_URL", "REDIS_URL", "CHAT_INTERNAL_TOKEN")
SECRETS = {
    "secrets": {
        "values": {
            "JWT_SECRET": "a-production-secret-shared-with-the-game-backend",
            "MONGODB_URL": "mongodb://mongo-0.mongo:27017,mongo-1.mongo:27017/?replicaSet=rs0",
            "REDIS_URL": "redis://redis-master:6379/0",
            "CHAT_INTERNAL_TOKEN": "a-service-token",
        }
    }
}
# The value sets operators install with; each one is linted, rendered and validated.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": SECRETS,
    "autoscaling": {**SECRETS, "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80}},
    "existing-secret": {"secrets": {"existingSecret": "chat-production"}},
    "ingress-api-prefix": {
        **SECRETS,
        "ingress": {
            "enabled": True,
            "pathPrefix": "/api",
            "hosts": [{"host": "chat.example.com"}],
            "tls": [{"secretName": "chat-example-com-tls", "hosts": ["chat.example.com"]}],
        },
    },
    "monitoring": {**SECRETS, "serviceMonitor": {"enabled": True}, "podDisruptionBudget": {"minAvailable": "50%"}},
    "redis-cluster": {
        "secrets": {
            "values": {
                **SECRETS["secrets"]["values"],
                **yaml.safe_load((CHART / "values-redis-cluster.yaml").read_text())["secrets"]["values"],
            }
        }
    },
}
# ServiceMonitor is a CRD (Prometheus Operator): no Kubernetes schema, checked by its own test.
CUSTOM_KINDS = {"ServiceMonitor"}

Manifest = dict[str, Any]


@cache
def _chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render_files(values: dict[str, Any]) -> dict[str, str]:
    """``helm template`` offline: template path -> rendered text (values merged over the defaults)."""
    return _chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render(values: dict[str, Any]) -> list[Manifest]:
    """Every manifest the chart renders with ``values``."""
    return [
        document
        for path, text in render_files(values).items()
        if path.endswith((".yaml", ".yml"))
        for document in yaml.safe_load_all(text)
        if document
    ]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(manifests: list[Manifest]) -> dict[str, Any]:
    containers = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def pod_environment(manifests: list[Manifest]) -> dict[str, str]:
    """What the app would see: the ConfigMap through envFrom, then the Secret's keys through env."""
    config = one(manifests, "ConfigMap")["data"]
    secrets = {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}
        for s in of_kind(manifests, "Secret")
    }
    env = dict(config)
    for variable in container(manifests)["env"]:
        ref = variable["valueFrom"]["secretKeyRef"]
        if ref["key"] in secrets.get(ref["name"], {}):
            env[variable["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def kubernetes_versions() -> list[str]:
    """The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the newest schema shipped."""
    claimed = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    oldest = re.search(r">=\s*v?(\d+\.\d+)", claimed)
    assert oldest, claimed
    return [oldest.group(1), ".".join(latest_version().split(".")[:2])]


def refused(values: dict[str, Any]) -> str:
    """The message Helm stops with: a schema violation or a template ``fail``."""
    with pytest.raises(helm.HelmError) as caught:
        render_files(values)
    return str(caught.value)


# --- the chart as a whole -----------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_chart_lints_clean_with_each_operator_value_set(value_set: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[value_set], strict=True, kube_version="v1.30.0", namespace=NAMESPACE)
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and findings == [], report


@pytest.mark.parametrize("version", kubernetes_versions())
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_manifest_is_valid_kubernetes(value_set: str, version: str) -> None:
    manifests = render(VALUE_SETS[value_set])
    assert manifests
    for manifest in manifests:
        if manifest["kind"] in CUSTOM_KINDS:
            with pytest.raises(SchemaNotFoundError):
                kubernetes_validate.validate(manifest, version, strict=True)
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            pytest.fail(f"{manifest['kind']} {manifest['metadata']['name']} at {where}: {error.message}")
        assert manifest["metadata"]["name"].startswith(RELEASE)
        assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_chart_app_version_is_the_package_version_and_the_default_image_tag() -> None:
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _chart().metadata["appVersion"] == package
    assert container(render(SECRETS))["image"] == f"altzone-chatserver:{package}"
    pinned = {**SECRETS, "image": {"repository": "registry.example.com/chat", "digest": "sha256:" + "a" * 64}}
    assert container(render(pinned))["image"] == "registry.example.com/chat@sha256:" + "a" * 64


def test_service_monitor_is_off_by_default_and_scrapes_the_http_port_when_on() -> None:
    assert of_kind(render(SECRETS), "ServiceMonitor") == []
    manifests = render(VALUE_SETS["monitoring"])
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["metadata"]["labels"].items() >= monitor["spec"]["selector"]["matchLabels"].items(), (
        "a ServiceMonitor selects Services by their own labels"
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and "/metrics" in app_route_paths()
    assert re.fullmatch(r"\d+s", endpoint["interval"]) and re.fullmatch(r"\d+s", endpoint["scrapeTimeout"])
    # The scraped port: Service port by name -> its targetPort -> the container port the app listens on.
    [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    [container_port] = [p for p in container(manifests)["ports"] if p["name"] == port["targetPort"]]
    assert container_port["containerPort"] == image_serve_port()


def test_service_monitor_scrapes_metrics_at_the_root_even_under_an_ingress_prefix() -> None:
    """Prometheus talks to the pods, not the Ingress: /metrics stays at / when CHAT_ROOT_PATH is set."""
    values = {**VALUE_SETS["ingress-api-prefix"], "serviceMonitor": {"enabled": True}}
    manifests = render(values)
    [endpoint] = one(manifests, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["path"] in app_route_paths(Settings.from_env(pod_environment(manifests)))


def test_service_monitor_path_answers_prometheus_text_on_a_live_server(embedded_server: ServerProcess) -> None:
    [endpoint] = one(render(VALUE_SETS["monitoring"]), "ServiceMonitor")["spec"]["endpoints"]
    response = httpx.get(embedded_server.http_url + endpoint["path"], timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE chat_open_sockets gauge" in response.text


# --- pods, probes, port -------------------------------------------------------------------------


def test_probes_ask_routes_the_app_serves() -> None:
    spec = container(render(SECRETS))
    routes = app_route_paths()
    paths = {probe: spec[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert paths == {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    assert set(paths.values()) <= routes
    assert {spec[probe]["httpGet"]["port"] for probe in paths} == {"http"}


def test_probe_routes_answer_on_a_live_server(embedded_server: ServerProcess) -> None:
    spec = container(render(SECRETS))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        response = httpx.get(embedded_server.http_url + spec[probe]["httpGet"]["path"], timeout=5)
        assert response.status_code == 200, (probe, response.text)


def test_pods_listen_where_the_service_and_the_image_point() -> None:
    manifests = render(SECRETS)
    spec = container(manifests)
    [port] = spec["ports"]
    assert port == {"name": "http", "containerPort": image_serve_port(), "protocol": "TCP"}
    args = spec["args"]
    assert args[args.index("--port") + 1] == str(port["containerPort"])
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert "command" not in spec, "the image's entry point, chatserver, runs"
    service = one(manifests, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= (
        one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_pods_arguments_are_ones_the_cli_accepts_with_a_log_level_uvicorn_knows() -> None:
    schema = _chart().schema
    assert schema is not None
    levels = schema["properties"]["logLevel"]["enum"]
    assert set(levels) <= set(uvicorn.config.LOG_LEVELS)
    for level in levels:
        args = cli_parser().parse_args(container(render({**SECRETS, "logLevel": level}))["args"])
        assert (args.command or "serve", args.port, args.log_level) == ("serve", image_serve_port(), level)


def test_pods_run_as_the_images_user_locked_down() -> None:
    pod = one(render(SECRETS), "Deployment")["spec"]["template"]["spec"]
    uid, gid = image_user()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    security = pod["containers"][0]["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False, "no injected <SERVICE>_PORT variables"
    [mount] = pod["containers"][0]["volumeMounts"]
    [volume] = pod["volumes"]
    assert mount == {"name": volume["name"], "mountPath": "/tmp"} and "emptyDir" in volume
    resources = pod["containers"][0]["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_a_weakened_security_context_is_refused() -> None:
    assert "readOnlyRootFilesystem" in refused({**SECRETS, "securityContext": {"readOnlyRootFilesystem": False}})
    assert "runAsNonRoot" in refused({**SECRETS, "podSecurityContext": {"runAsNonRoot": False}})


def test_rollouts_never_drop_below_the_wanted_replicas() -> None:
    deployment = one(render(SECRETS), "Deployment")
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
    }
    assert deployment["spec"]["minReadySeconds"] > 0


def test_changing_a_setting_rolls_the_pods() -> None:
    """The app reads its settings once at start, so a new ConfigMap must come with new pods."""

    def annotations(values: dict[str, Any]) -> dict[str, str]:
        found: dict[str, str] = one(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return found

    before = annotations(SECRETS)
    after = annotations({**SECRETS, "config": {"CHAT_DIALECT": "game"}})
    assert before["checksum/config"] != after["checksum/config"]
    assert before["checksum/secret"] == after["checksum/secret"]


# --- settings and secrets -----------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pods_get_only_variables_the_app_reads(value_set: str) -> None:
    manifests = render(VALUE_SETS[value_set])
    spec = container(manifests)
    known = app_env_names()
    assert spec["envFrom"] == [{"configMapRef": {"name": FULLNAME}}]
    config_names = set(one(manifests, "ConfigMap")["data"])
    env_names = {variable["name"] for variable in spec["env"]}
    assert config_names <= known, f"ConfigMap keys the app never reads: {sorted(config_names - known)}"
    assert env_names <= known, f"env names the app never reads: {sorted(env_names - known)}"
    assert not config_names & set(SECRET_VARIABLES), "no secret in the ConfigMap"


def test_values_schema_allows_exactly_the_apps_non_secret_settings() -> None:
    schema = _chart().schema
    assert schema is not None
    config = set(schema["properties"]["config"]["properties"])
    secrets = set(schema["properties"]["secrets"]["properties"]["values"]["properties"])
    assert secrets == set(SECRET_VARIABLES)
    assert config | secrets == app_env_names(), "every setting the app reads has a place in the values, no other"
    assert set(_chart().values["config"]) == config


def test_secret_keys_are_the_variables_the_pods_read() -> None:
    manifests = render(SECRETS)
    [secret] = of_kind(manifests, "Secret")
    assert secret["metadata"]["name"] == FULLNAME and secret["type"] == "Opaque"
    references = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container(manifests)["env"]}
    assert set(references) == set(SECRET_VARIABLES) == set(secret["data"])
    for name, ref in references.items():
        assert ref["key"] == name and ref["name"] == FULLNAME
    assert [name for name, ref in references.items() if ref.get("optional")] == ["CHAT_INTERNAL_TOKEN"]


def test_default_settings_are_the_apps_own_defaults_in_production() -> None:
    """What the pods see starts the app (Settings.from_env raises otherwise) and changes nothing
    but CHAT_ENV=production: the chart's explicit defaults cannot drift from the app's."""
    env = pod_environment(render(SECRETS))
    settings = Settings.from_env(env)
    secrets_only = Settings.from_env({name: env[name] for name in SECRET_VARIABLES})
    assert settings.is_production and not settings.uses_dev_secret
    assert settings == dataclasses.replace(secrets_only, environment=Environment.PRODUCTION)


def test_settings_given_as_values_reach_the_app() -> None:
    values = {
        **SECRETS,
        "config": {
            "CHAT_DIALECT": "game",
            "CHAT_FEELINGS": "Happy,Sad,Neutral",
            "CHAT_PLAYERS_FROM_DB": False,
            "CHAT_MEMORY_MAX_MESSAGES": 1_000_000,
            "CHAT_MESSAGE_RATE": 0.5,
            "CHAT_MESSAGE_BURST": 30,
            "CHAT_ALLOWED_ORIGINS": "https://game.example.com",
        },
    }
    settings = Settings.from_env(pod_environment(render(values)))
    assert settings.dialect == "game" and settings.feelings == ("Happy", "Sad", "Neutral")
    assert settings.players_from_database is False
    assert settings.memory_max_messages == 1_000_000, "large numbers are not printed as 1e+06"
    assert (settings.message_rate.per_second, settings.message_rate.burst) == (0.5, 30), "rates may be fractional"
    assert settings.allowed_origins == ("https://game.example.com",)


def test_values_schema_refuses_a_drain_the_app_would_refuse() -> None:
    """The grace period is computed from CHAT_DRAIN_SECONDS, so the schema's floor is the app's."""
    schema = _chart().schema
    assert schema is not None
    floor = schema["properties"]["config"]["properties"]["CHAT_DRAIN_SECONDS"]["minimum"]
    Settings.from_env({"CHAT_DRAIN_SECONDS": str(floor)})
    with pytest.raises(SettingsError):
        Settings.from_env({"CHAT_DRAIN_SECONDS": str(floor - 1)})
    assert "CHAT_DRAIN_SECONDS" in refused({**SECRETS, "config": {"CHAT_DRAIN_SECONDS": floor - 1}})


def test_existing_secret_creates_no_secret_and_pods_read_the_named_one() -> None:
    manifests = render(VALUE_SETS["existing-secret"])
    assert of_kind(manifests, "Secret") == []
    references = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container(manifests)["env"]}
    assert set(references) == set(SECRET_VARIABLES)
    assert {ref["name"] for ref in references.values()} == {"chat-production"}
    assert "checksum/secret" not in one(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize("missing", ["JWT_SECRET", "MONGODB_URL", "REDIS_URL"])
def test_install_without_a_required_secret_is_refused_naming_it(missing: str) -> None:
    values = {"secrets": {"values": {**SECRETS["secrets"]["values"], missing: ""}}}
    assert f"secrets.values.{missing} is required" in refused(values)


def test_install_with_neither_an_existing_nor_a_created_secret_is_refused() -> None:
    assert "set secrets.existingSecret" in refused({"secrets": {"create": False}})


def test_values_schema_rejects_typos_wrong_types_and_unknown_settings() -> None:
    assert "replicaCount" in refused({**SECRETS, "replicaCount": "three"})
    assert "replicaCount" in refused({**SECRETS, "replicaCount": 0})
    assert "replicaCont" in refused({**SECRETS, "replicaCont": 3})
    assert "CHAT_DIALECT" in refused({**SECRETS, "config": {"CHAT_DIALECT": "fancy"}})
    assert "CHAT_UNKNOWN" in refused({**SECRETS, "config": {"CHAT_UNKNOWN": "x"}})
    assert "pathPrefix" in refused({**SECRETS, "ingress": {"pathPrefix": "/api/"}})


# --- shutdown -----------------------------------------------------------------------------------


def _shutdown(values: dict[str, Any]) -> tuple[int, int, int]:
    """(grace period, preStop sleep, drain seconds the app will use) of the rendered pods."""
    manifests = render(values)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = Settings.from_env(pod_environment(manifests)).drain_seconds
    return pod["terminationGracePeriodSeconds"], int(command[1]), drain


def test_grace_period_covers_the_prestop_sleep_and_the_drain() -> None:
    """Kubernetes counts the preStop sleep against the grace period, then sends SIGTERM; the app then
    needs CHAT_DRAIN_SECONDS to close its sockets with 1012 before SIGKILL may come."""
    grace, pre_stop, drain = _shutdown(SECRETS)
    assert pre_stop >= 1 and drain == Settings().drain_seconds
    assert grace >= pre_stop + drain
    grace, pre_stop, drain = _shutdown({**SECRETS, "config": {"CHAT_DRAIN_SECONDS": 60}})
    assert drain == 60 and grace >= pre_stop + 60
    grace, _, _ = _shutdown({**SECRETS, "shutdown": {"terminationGracePeriodSeconds": 120}})
    assert grace == 120


def test_the_game_values_give_the_game_dialect_and_a_drain_the_grace_period_covers() -> None:
    game_values = yaml.safe_load((CHART / "values-game.yaml").read_text())
    grace, pre_stop, drain = _shutdown({**SECRETS, **game_values})
    assert drain == 55 and grace >= pre_stop + drain
    settings = Settings.from_env(pod_environment(render({**SECRETS, **game_values})))
    assert (settings.dialect, settings.reactions) == ("game", ("Happy", "Sad", "Love", "Wink", "Angry"))


def test_the_redis_cluster_values_give_the_pods_a_cluster_node_as_redis_url() -> None:
    secret = one(render(VALUE_SETS["redis-cluster"]), "Secret")
    cluster_url = yaml.safe_load((CHART / "values-redis-cluster.yaml").read_text())["secrets"]["values"]["REDIS_URL"]
    assert base64.b64decode(secret["data"]["REDIS_URL"]).decode() == cluster_url


def test_a_grace_period_shorter_than_the_drain_is_refused() -> None:
    message = refused({**SECRETS, "shutdown": {"terminationGracePeriodSeconds": 10}})
    assert "terminationGracePeriodSeconds=10" in message and "CHAT_DRAIN_SECONDS (20)" in message


# --- scaling ------------------------------------------------------------------------------------


def test_replica_count_comes_from_values() -> None:
    assert one(render(SECRETS), "Deployment")["spec"]["replicas"] == 3
    scaled = {**SECRETS, **helm.parse_set_string("replicaCount=10")}  # --set replicaCount=10
    assert one(render(scaled), "Deployment")["spec"]["replicas"] == 10


def test_autoscaler_owns_the_replica_count_only_when_enabled() -> None:
    assert of_kind(render(SECRETS), "HorizontalPodAutoscaler") == []
    manifests = render(VALUE_SETS["autoscaling"])
    hpa = one(manifests, "HorizontalPodAutoscaler")
    deployment = one(manifests, "Deployment")
    assert "replicas" not in deployment["spec"], "a Deployment's replicas would fight the HPA on every upgrade"
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 70, "memory": 80}
    assert "cpu" in container(manifests)["resources"]["requests"], "CPU utilisation needs a CPU request"


def test_disruption_budget_limits_evictions() -> None:
    budget = one(render(SECRETS), "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    budget = one(render(VALUE_SETS["monitoring"]), "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in budget["spec"]
    assert (
        budget["spec"]["selector"]["matchLabels"]
        == one(render(SECRETS), "Deployment")["spec"]["selector"]["matchLabels"]
    )


# --- ingress ------------------------------------------------------------------------------------


def _paths(ingress: Manifest) -> Iterator[dict[str, Any]]:
    for rule in ingress["spec"]["rules"]:
        yield from rule["http"]["paths"]


def test_ingress_is_off_by_default() -> None:
    assert of_kind(render(SECRETS), "Ingress") == []
    assert "CHAT_ROOT_PATH" not in one(render(SECRETS), "ConfigMap")["data"]


def test_ingress_prefix_routes_to_the_service_and_the_app_serves_under_it() -> None:
    manifests = render(VALUE_SETS["ingress-api-prefix"])
    ingress = one(manifests, "Ingress")
    service = one(manifests, "Service")
    paths = list(_paths(ingress))
    assert [path["path"] for path in paths] == ["/api/ws/chat", "/api/chat/history"]
    for path in paths:
        assert path["pathType"] == "Exact"
        assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["spec"]["rules"][0]["host"] == "chat.example.com"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert not any("rewrite" in key for key in annotations), "no rewrite: the app serves the prefix itself"
    settings = Settings.from_env(pod_environment(manifests))
    assert settings.root_path == "/api"
    assert {"/api/ws/chat", "/api/chat/history", "/api/readyz", "/ws/chat"} <= app_route_paths(settings)
    assert (
        "wss://chat.example.com/api/ws/chat"
        in render_files(VALUE_SETS["ingress-api-prefix"])["chatserver/templates/NOTES.txt"]
    )


def test_ingress_keeps_operator_annotations_and_their_own_timeouts() -> None:
    values = {
        **SECRETS,
        "ingress": {
            "enabled": True,
            "annotations": {
                "cert-manager.io/cluster-issuer": "letsencrypt",
                "nginx.ingress.kubernetes.io/proxy-read-timeout": "7200",
            },
        },
    }
    annotations = one(render(values), "Ingress")["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"


def test_a_root_path_that_contradicts_the_ingress_prefix_is_refused() -> None:
    values = {**SECRETS, "config": {"CHAT_ROOT_PATH": "/chat"}, "ingress": {"enabled": True, "pathPrefix": "/api"}}
    assert "CHAT_ROOT_PATH (/chat) and ingress.pathPrefix (/api) differ" in refused(values)


def test_ingress_publishes_only_the_chats_public_routes_and_leaves_the_rest_of_the_prefix_alone() -> None:
    """Production's /api prefix is shared with the game backend: a Prefix rule on /api would take
    all of its routes. Only Exact chat routes are claimed, and the internal ones stay private."""
    for values in (VALUE_SETS["ingress-api-prefix"], {**SECRETS, "ingress": {"enabled": True}}):
        manifests = render(values)
        settings = Settings.from_env(pod_environment(manifests))
        published = {path["path"] for path in _paths(one(manifests, "Ingress"))}
        assert all(path["pathType"] == "Exact" for path in _paths(one(manifests, "Ingress")))
        assert published <= app_route_paths(settings), "every published path is a route the app serves"
        assert {p.removeprefix(settings.root_path) for p in published} == {"/ws/chat", "/chat/history"}
        for private in ("/metrics", "/internal/membership", "/readyz", "/healthz", "/"):
            assert settings.root_path + private not in published and private not in published


def test_ingress_can_publish_the_api_documentation_too() -> None:
    values = {
        **SECRETS,
        "ingress": {
            "enabled": True,
            "pathPrefix": "/api",
            "paths": ["/ws/chat", "/chat/history", "/docs", "/openapi.json"],
        },
    }
    manifests = render(values)
    published = [path["path"] for path in _paths(one(manifests, "Ingress"))]
    assert published == ["/api/ws/chat", "/api/chat/history", "/api/docs", "/api/openapi.json"]
    assert set(published) <= app_route_paths(Settings.from_env(pod_environment(manifests)))
    assert "paths" in refused({**SECRETS, "ingress": {"enabled": True, "paths": []}})
    assert "paths" in refused({**SECRETS, "ingress": {"enabled": True, "paths": ["ws/chat"]}})


def test_blocklist_terms_become_a_mounted_file_named_by_chat_blocklist_file() -> None:
    manifests = render({**SECRETS, "blocklist": {"terms": ["fuck*", "kill yourself"]}})
    blocklist = next(m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"] == f"{FULLNAME}-blocklist")
    config = next(m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"] == FULLNAME)
    spec = container(manifests)
    volumes = one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]

    assert blocklist["data"] == {"blocklist.txt": "fuck*\nkill yourself\n"}
    assert config["data"]["CHAT_BLOCKLIST_FILE"] == "/etc/chatserver/blocklist/blocklist.txt"
    assert {"name": "blocklist", "mountPath": "/etc/chatserver/blocklist", "readOnly": True} in spec["volumeMounts"]
    assert {"name": "blocklist", "configMap": {"name": f"{FULLNAME}-blocklist"}} in volumes
    without = render(SECRETS)
    assert "CHAT_BLOCKLIST_FILE" not in one(without, "ConfigMap")["data"]
    assert [m["kind"] for m in without].count("ConfigMap") == 1
