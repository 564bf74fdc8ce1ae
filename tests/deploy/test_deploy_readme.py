"""k8s/README.md's commands, as an operator copies them: every ``helm install``/``helm upgrade`` there
is rendered with its own ``--set``/``--set-string``/``-f`` flags (upgrades with ``--reuse-values`` on
top of the install before them), and what each one promises is checked on the result.

No cluster runs here: this is the same offline render and schema validation as tests/deploy/test_deploy_helm.py.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from chatserver.settings import Settings
from tests.deploy.test_deploy_helm import (
    CUSTOM_KINDS,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    SECRET_VARIABLES,
    Manifest,
    container,
    kubernetes_versions,
    of_kind,
    one,
    pod_environment,
    render,
)
from tests.support.harness import ROOT

README = ROOT / "k8s" / "README.md"


@dataclass
class HelmCommand:
    line: str
    verb: str
    release: str
    chart: str
    namespace: str | None
    reuse_values: bool
    values: dict[str, Any] = field(default_factory=dict)


def _merge(base: Any, over: Any) -> Any:
    """Helm's way of applying one value source over another: maps and list items merge by key/index."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(over, list):
        merged_list = list(base) + [None] * max(0, len(over) - len(base))
        for index, value in enumerate(over):
            if value is not None:
                merged_list[index] = _merge(merged_list[index], value) if merged_list[index] is not None else value
        return merged_list
    return over


def _code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def _values_file(name: str) -> dict[str, Any]:
    """A ``-f`` file the README shows as a yaml block headed ``# <name>``, or one the repository ships."""
    shipped = ROOT / name
    if shipped.is_file():
        document: dict[str, Any] = yaml.safe_load(shipped.read_text())
        return document
    for block in _code_blocks("yaml"):
        if block.startswith(f"# {name}\n"):
            shown: dict[str, Any] = yaml.safe_load(block)
            return shown
    raise AssertionError(f"k8s/README.md uses -f {name} but shows no yaml block for it")


@cache
def readme_helm_commands() -> tuple[HelmCommand, ...]:
    """``helm install``/``helm upgrade`` commands of the README's sh blocks, in order, with the values
    each one leaves the release with."""
    commands: list[HelmCommand] = []
    previous: dict[str, Any] = {}
    for block in _code_blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] not in (["helm", "install"], ["helm", "upgrade"]):
                continue
            release, chart, *flags = words[2:]
            command = HelmCommand(line, words[1], release, chart, None, "--reuse-values" in flags)
            values: dict[str, Any] = dict(previous) if command.reuse_values else {}
            sets: list[dict[str, Any]] = []
            iterator = iter(flags)
            for flag in iterator:
                if flag in ("--namespace", "-n"):
                    command.namespace = next(iterator)
                elif flag == "--set":
                    sets.append(helm.parse_set_string(next(iterator)))
                elif flag == "--set-string":
                    sets.append(helm.parse_set_string_values(next(iterator)))
                elif flag in ("-f", "--values"):
                    sets.append(_values_file(next(iterator)))
                else:
                    assert flag in ("--create-namespace", "--reuse-values"), f"unexpected flag {flag} in: {line}"
            for value_set in sets:
                values = _merge(values, value_set)
            command.values = values
            previous = values
            commands.append(command)
    return tuple(commands)


def readme_existing_secret() -> tuple[str, dict[str, str]]:
    """The name and the keys of the Secret the README's ``kubectl create secret generic`` makes."""
    for block in _code_blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["kubectl"] and "secret" in words and "generic" in words:
                name = words[words.index("generic") + 1]
                literals = [w.removeprefix("--from-literal=") for w in words if w.startswith("--from-literal=")]
                return name, dict(literal.split("=", 1) for literal in literals)
    raise AssertionError("k8s/README.md shows no `kubectl create secret generic` command")


def app_environment(manifests: list[Manifest]) -> dict[str, str]:
    """What the app sees in a pod, the README's own Secret filling in when the chart creates none."""
    env = pod_environment(manifests)
    name, keys = readme_existing_secret()
    for variable in container(manifests)["env"]:
        ref = variable["valueFrom"]["secretKeyRef"]
        if ref["name"] == name and ref["key"] in keys:
            env[variable["name"]] = keys[ref["key"]]
    return env


def _command(pattern: str) -> HelmCommand:
    found = [c for c in readme_helm_commands() if re.search(pattern, c.line)]
    assert len(found) == 1, f"expected one helm command matching {pattern!r} in k8s/README.md, found {len(found)}"
    return found[0]


def test_readme_shows_install_scale_autoscale_upgrade_and_prefix_commands() -> None:
    verbs = [c.verb for c in readme_helm_commands()]
    assert verbs.count("install") == 2, "with a created Secret and with an existing one"
    for pattern in (r"replicaCount=10", r"autoscaling\.enabled=true", r"image\.tag=0\.2\.0", r"pathPrefix=/api"):
        _command(pattern)
    for command in readme_helm_commands():
        assert (command.release, command.chart, command.namespace) == (RELEASE, "k8s/chatserver", NAMESPACE)
    text = README.read_text()
    assert f"deployment/{FULLNAME}" in text, "the rollout commands name the Deployment the chart renders"
    assert "What was verified here and what needs a real cluster" in text


@pytest.mark.parametrize("index", range(len(readme_helm_commands())))
def test_every_readme_helm_command_renders_valid_kubernetes(index: int) -> None:
    command = readme_helm_commands()[index]
    manifests = render(command.values)
    Settings.from_env(app_environment(manifests))  # the pods' environment starts the app
    for version in kubernetes_versions():
        for manifest in manifests:
            if manifest["kind"] in CUSTOM_KINDS:
                continue
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{command.line}\n{manifest['kind']}: {error.message}")


def _deployment(manifests: list[Manifest]) -> dict[str, Any]:
    found: dict[str, Any] = one(manifests, "Deployment")
    return found


def test_readme_install_commands_do_what_the_readme_says() -> None:
    created, existing = [c for c in readme_helm_commands() if c.verb == "install"]
    manifests = render(created.values)
    [secret] = of_kind(manifests, "Secret")
    assert set(secret["data"]) == {"JWT_SECRET", "MONGODB_URL", "REDIS_URL", "CHAT_INTERNAL_TOKEN"}
    settings = Settings.from_env(app_environment(manifests))
    assert settings.mongodb_url and settings.mongodb_url.count(",") == 2, "the commas of a multi-host URL survive"
    assert container(manifests)["image"] == "registry.example.com/altzone/chatserver:0.1.0"
    manifests = render(existing.values)
    assert of_kind(manifests, "Secret") == []
    refs = {v["valueFrom"]["secretKeyRef"]["name"] for v in container(manifests)["env"]}
    assert refs == {existing.values["secrets"]["existingSecret"]}
    name, keys = readme_existing_secret()
    assert existing.values["secrets"]["existingSecret"] == name
    assert set(keys) == set(SECRET_VARIABLES), "the README's Secret has every key the pods read"
    assert set(keys) <= {v["valueFrom"]["secretKeyRef"]["key"] for v in container(manifests)["env"]}
    assert not Settings.from_env(app_environment(manifests)).uses_dev_secret


def test_readme_scale_and_autoscale_commands_do_what_the_readme_says() -> None:
    assert _deployment(render(_command(r"replicaCount=10").values))["spec"]["replicas"] == 10
    manifests = render(_command(r"autoscaling\.enabled=true").values)
    hpa = one(manifests, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    assert "replicas" not in _deployment(manifests)["spec"]


def test_readme_settings_and_prefix_commands_reach_the_app() -> None:
    settings = Settings.from_env(app_environment(render(_command(r"CHAT_DIALECT=game").values)))
    assert settings.dialect == "game" and settings.allowed_origins == ("https://altzone.fi",)
    assert settings.feelings == ("Happy", "Sad", "Neutral", "Love", "Thinking", "Wink", "Angry", "None")
    assert (settings.message_rate.per_second, settings.message_rate.burst) == (1.0, 5)
    manifests = render(_command(r"pathPrefix=/api").values)
    ingress = one(manifests, "Ingress")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/api/ws/chat", "/api/chat/history"]
    assert ingress["spec"]["tls"] == [{"secretName": "altzone-fi-tls", "hosts": ["altzone.fi"]}]
    assert Settings.from_env(app_environment(manifests)).root_path == "/api"


def test_readme_upgrade_command_changes_only_the_image() -> None:
    upgrade = _command(r"image\.tag=0\.2\.0")
    assert upgrade.reuse_values
    assert container(render(upgrade.values))["image"] == "registry.example.com/altzone/chatserver:0.2.0"
