"""The Kubernetes manifests: every overlay renders, and what it renders runs the services the way their
code expects. Rendering uses the small subset of kustomize the manifests use (below), in Python, so the
test needs no kubectl; a kustomization using anything else fails here until the renderer learns it."""

from __future__ import annotations

import ast
import copy
import functools
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from omsctl import envoy as edge
from omsctl import k8s
from omsctl.stack import PAYMENT_CLIENT_KEYS, PAYMENT_SANDBOX_KEYS, SERVICES
from services.gateway.routes import PUBLIC_SERVICES
from services.kit.identity import public_key_of

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
NAMESPACE = "oms"
GRPC_PORTS = {spec.name: spec.default_port for spec in SERVICES}
DATABASE_SERVICES = [spec.name for spec in SERVICES if spec.database]
IDENTITY_ENV = {"HOST", "IDENTITY_SIGNING_KID", "IDENTITY_SIGNING_KEY", "IDENTITY_TRUSTED_KEYS"}
CARRIER_ACCOUNTS = {
    "SF_PARTNER_ID",
    "SF_CHECKWORD",
    "KUAIDI100_KEY",
    "KUAIDI100_SECRET",
    "KUAIDI100_CUSTOMER",
    "CAINIAO_APP_KEY",
    "CAINIAO_APP_SECRET",
}
CARRIER_ENV = {
    *CARRIER_ACCOUNTS,
    "SF_API_URL",
    "KUAIDI100_API_URL",
    "KUAIDI100_POLL_URL",
    "CAINIAO_API_URL",
    "KUAIDI100_CALLBACK_URL",
    "KUAIDI100_PUSH_SALT",
}
PII_ENV = {"PII_KEYS", "PII_ACTIVE_KEY", "PII_HASH_KEY"}
# the merchant's accounts and keys (what omsctl hands a service with payments=True) and the providers' URLs
PAYMENT_ACCOUNTS = {f"PAYMENT_{name}" for name in PAYMENT_CLIENT_KEYS}
PAYMENT_ENV = {*PAYMENT_ACCOUNTS, "PAYMENT_WECHAT_API_URL", "PAYMENT_ALIPAY_API_URL"}
PAYMENT_API_URLS = {
    "prod": {
        "PAYMENT_WECHAT_API_URL": "https://api.mch.weixin.qq.com",
        "PAYMENT_ALIPAY_API_URL": "https://openapi.alipay.com",
    },
    "dev": {
        "PAYMENT_WECHAT_API_URL": "http://payment-sandbox:18020",
        "PAYMENT_ALIPAY_API_URL": "http://payment-sandbox:18020",
    },
}
REQUIRED_ENV = {
    **{
        spec.name: {
            "DATABASE_URL",
            "NATS_URL",
            "PORT",
            *IDENTITY_ENV,
            *(PII_ENV if spec.pii else ()),
            *(CARRIER_ENV if spec.carriers else ()),
            *(PAYMENT_ENV if spec.payments else ()),
        }
        for spec in SERVICES
        if spec.database
    },
    "gateway": {"PORT", *PUBLIC_SERVICES.values(), *IDENTITY_ENV, "SF_PUSH_TOKEN", "KUAIDI100_PUSH_SALT"},
}
# stand-ins for outside systems, in the dev overlay only (docs/sandboxes.md)
SANDBOX_DEPLOYMENTS = {"dev": {"carrier-sandbox", "payment-sandbox", "sms-sandbox"}, "prod": set()}
# the platform's dependencies, run in the cluster by the dev overlay only (prod's are operated elsewhere),
# each reached by the services given the setting that names it
DEPENDENCIES = {"dev": {"postgres", "redis", "nats"}, "prod": set()}
DEPENDENCY_SETTINGS = {
    "postgres": ("DATABASE_URL", 5432),
    "redis": ("REDIS_URL", 6379),
    "nats": ("NATS_URL", 4222),
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# who may call whom: the gateway is called by Envoy, every other service by the gateway, by Envoy when
# it owns a direct read (omsctl.envoy.add_direct_lane) and by the services that name it as a peer
DIRECT_OWNERS = {method.split(".")[1] for method in edge.direct_methods()}
CALLERS = {
    spec.name: {"envoy"}
    if spec.edge
    else {
        "gateway",
        *({"envoy"} if spec.name in DIRECT_OWNERS else set()),
        *(s.name for s in SERVICES if spec.name in s.peers),
    }
    for spec in SERVICES
}
# the gateway's ports Envoy reaches: its proxy and its authoriser of direct reads
EDGE_PORTS = {"gateway": [50050, edge.AUTHZ_PORT]}
RENDERED_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "configMapGenerator",
    "patches",
    "images",
    "replicas",
}
NAMED_LISTS = {"containers", "initContainers", "env", "volumes"}
OLDEST_SUPPORTED_KUBERNETES = "1.30"

Object = dict[str, Any]


def documents(path: Path) -> list[Object]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def kustomization(directory: Path) -> Object:
    loaded: Object = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return loaded


def strategic_merge(target: Object, patch: Object) -> None:
    for key, value in patch.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            strategic_merge(current, value)
        elif key in NAMED_LISTS and isinstance(current, list):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    strategic_merge(by_name[item["name"]], item)
                else:
                    current.append(item)
        else:
            target[key] = copy.deepcopy(value)


def find(objects: list[Object], kind: str, name: str) -> Object:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def generate_config_maps(objects: list[Object], generators: list[Object]) -> None:
    """Generated names keep no hash suffix here; kustomize rewrites every reference to them alike."""
    for generator in generators:
        data = dict(literal.split("=", 1) for literal in generator["literals"])
        behavior = generator.get("behavior", "create")
        if behavior == "create":
            metadata = {"name": generator["name"]}
            objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
        elif behavior == "merge":
            find(objects, "ConfigMap", generator["name"])["data"].update(data)
        else:
            find(objects, "ConfigMap", generator["name"])["data"] = data


def workloads(objects: list[Object]) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] in WORKLOAD_KINDS}


def pod_templates(objects: list[Object]) -> list[Object]:
    return [o["spec"]["template"]["spec"] for o in workloads(objects).values()]


def set_images(objects: list[Object], images: list[Object]) -> None:
    for pod in pod_templates(objects):
        for container in containers(pod):
            for image in images:
                if container["image"].split(":")[0] == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"


def render_directory(directory: Path) -> list[Object]:
    spec = kustomization(directory)
    unknown = set(spec) - RENDERED_FIELDS
    assert not unknown, f"{directory}: the test's renderer does not know {sorted(unknown)}; teach it first"
    objects: list[Object] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        objects.extend(render_directory(path) if path.is_dir() else documents(path))
    generate_config_maps(objects, spec.get("configMapGenerator", []))
    for patch in spec.get("patches", []):
        for document in documents(directory / patch["path"]):
            strategic_merge(find(objects, document["kind"], document["metadata"]["name"]), document)
    set_images(objects, spec.get("images", []))
    for replicas in spec.get("replicas", []):
        find(objects, "Deployment", replicas["name"])["spec"]["replicas"] = replicas["count"]
    if "namespace" in spec:
        for item in objects:
            if item["kind"] != "Namespace":
                item["metadata"]["namespace"] = spec["namespace"]
    return objects


@functools.cache
def _rendered(overlay: str) -> tuple[Object, ...]:
    return tuple(render_directory(K8S / "overlays" / overlay))


def render(overlay: str) -> list[Object]:
    return copy.deepcopy(list(_rendered(overlay)))


def of_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def containers(pod: Object) -> list[Object]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def main_container(deployment: Object) -> Object:
    name = deployment["metadata"]["name"]
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def env_value(container: Object, name: str) -> str:
    return str(next(e["value"] for e in container["env"] if e["name"] == name))


def envoy_config() -> Object:
    loaded: Object = yaml.safe_load((ROOT / "deploy" / "envoy" / "envoy.yaml").read_text())
    return loaded


def kustomization_directories() -> list[Path]:
    return sorted(path.parent for path in K8S.rglob("kustomization.yaml"))


@pytest.mark.parametrize("directory", kustomization_directories(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_file_listed_in_each_kustomization_exists_and_parses(directory: Path) -> None:
    spec = kustomization(directory)
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file(), f"{path} is not a kustomization"
            continue
        assert path.is_file(), f"{directory.name} lists {entry}, which does not exist"
        for document in documents(path):
            assert {"apiVersion", "kind", "metadata"} <= set(document), f"{entry} has a malformed object"
    for patch in spec.get("patches", []):
        assert (directory / patch["path"]).is_file(), f"{directory.name} patches with missing {patch['path']}"
        assert documents(directory / patch["path"]), f"{patch['path']} is empty"


def test_the_example_secrets_are_never_applied_but_match_what_the_services_read() -> None:
    listed = {
        entry for directory in kustomization_directories() for entry in kustomization(directory)["resources"]
    }
    assert "secrets.example.yaml" not in listed
    secrets = {s["metadata"]["name"]: s for s in documents(K8S / "base" / "secrets.example.yaml")}
    assert set(secrets) == (
        {f"{name}-db" for name in DATABASE_SERVICES}
        | {f"{spec.name}-pii" for spec in SERVICES if spec.pii}
        | {f"{spec.name}-auth" for spec in SERVICES if spec.edge}
        | {f"{spec.name}-identity" for spec in SERVICES}
        | {f"{spec.name}-carriers" for spec in SERVICES if spec.carriers}
        | {f"{spec.name}-payments" for spec in SERVICES if spec.payments}
        # the carriers' push token and salt, read by the gateway, logistics and the dev sandbox alike
        | {"carrier-push"}
        # the providers' halves of the dev payment accounts, read by the dev overlay's payment sandbox
        | {"payment-sandbox"}
        # the gateway's SMS AccessKey, read by the dev overlay's gateway and SMS sandbox
        | {"gateway-sms"}
    )
    for secret in secrets.values():
        assert secret["kind"] == "Secret"
        assert secret["metadata"]["namespace"] == NAMESPACE
    for overlay in OVERLAYS:
        assert not of_kind(render(overlay), "Secret"), f"{overlay} renders a Secret; secrets come out of band"
        for pod in pod_templates(render(overlay)):
            for container in containers(pod):
                for env in container.get("env", []):
                    reference = env.get("valueFrom", {}).get("secretKeyRef")
                    if reference:
                        assert reference["key"] in secrets[reference["name"]]["stringData"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_deploys_exactly_the_services_that_exist_today(overlay: str) -> None:
    objects = render(overlay)
    deployed = {*GRPC_PORTS, "envoy"}
    assert set(of_kind(objects, "Deployment")) == deployed | SANDBOX_DEPLOYMENTS[overlay]
    assert set(of_kind(objects, "StatefulSet")) == DEPENDENCIES[overlay]
    # NATS' nodes also have a headless Service for their routes
    nats_routes = {"nats-cluster"} if "nats" in DEPENDENCIES[overlay] else set()
    assert set(of_kind(objects, "Service")) == (
        deployed | SANDBOX_DEPLOYMENTS[overlay] | DEPENDENCIES[overlay] | nats_routes
    )
    assert set(of_kind(objects, "PodDisruptionBudget")) == deployed | DEPENDENCIES[overlay]
    assert set(of_kind(objects, "HorizontalPodAutoscaler")) == set(GRPC_PORTS)
    assert set(of_kind(objects, "Namespace")) == {NAMESPACE}
    for item in objects:
        assert item["kind"] == "Namespace" or item["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_python_container_runs_one_pinned_platform_image_and_a_module_that_exists(overlay: str) -> None:
    images = set()
    for pod in pod_templates(render(overlay)):
        for container in containers(pod):
            command = container.get("command", [])
            if command[:2] != ["python", "-m"] and "/app/" not in " ".join(command):
                continue
            images.add(container["image"])
            if command[:2] == ["python", "-m"]:
                module = ROOT.joinpath(*command[2].split("."))
                runnable = (module / "__main__.py").is_file() or module.with_suffix(".py").is_file()
                assert runnable, f"no module {command[2]}"
    assert len(images) == 1, f"the Python services must share one image, got {images}"
    assert re.fullmatch(r"[\w./-]+:[\w.-]+", images.pop()), "the platform image must carry a tag"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_grpc_deployment_has_native_grpc_probes_on_its_container_port(overlay: str) -> None:
    deployments = of_kind(render(overlay), "Deployment")
    for name, port in GRPC_PORTS.items():
        container = main_container(deployments[name])
        assert [p["containerPort"] for p in container["ports"] if p["name"] == "grpc"] == [port]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, f"{name} {probe} is not a gRPC probe on {port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_is_scraped_on_the_metrics_port_it_serves(overlay: str) -> None:
    deployments = of_kind(render(overlay), "Deployment")
    for name, port in GRPC_PORTS.items():
        template = deployments[name]["spec"]["template"]
        container = main_container(deployments[name])
        env = {e["name"]: e.get("value") for e in container["env"]}
        metrics_port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
        assert metrics_port == int(env["METRICS_PORT"]) == port + 1000, name
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(metrics_port), name
        assert annotations["prometheus.io/path"] == "/metrics", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoy_is_probed_on_its_public_listener_because_admin_is_loopback_only(overlay: str) -> None:
    config = envoy_config()
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    listener = next(item for item in config["static_resources"]["listeners"] if item["name"] == "public")
    port = listener["address"]["socket_address"]["port_value"]
    deployment = of_kind(render(overlay), "Deployment")["envoy"]
    container = main_container(deployment)
    # the public listener, and the stats listener the pod's config adds for Prometheus
    assert [p["containerPort"] for p in container["ports"]] == [port, edge.STATS_PORT]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"]["port"] == port
    pod_config = edge.render_for_pod(edge.TEMPLATE, ROOT / "gen", {})
    stats = next(item for item in pod_config["static_resources"]["listeners"] if item["name"] == "stats")
    assert stats["address"]["socket_address"]["port_value"] == edge.STATS_PORT
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (
        str(edge.STATS_PORT),
        edge.STATS_PATH,
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_resource_requests_and_limits(overlay: str) -> None:
    for pod in pod_templates(render(overlay)):
        for container in containers(pod):
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"].get(bound, {})), (
                    f"{container['name']} has no cpu and memory {bound}"
                )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_as_non_root_with_no_capabilities_and_a_read_only_root(overlay: str) -> None:
    for pod in pod_templates(render(overlay)):
        assert pod["automountServiceAccountToken"] is False
        for container in containers(pod):
            effective = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
            name = container["name"]
            assert effective.get("runAsNonRoot") is True, f"{name} may run as root"
            assert effective.get("allowPrivilegeEscalation") is False, f"{name} may escalate privileges"
            assert effective.get("readOnlyRootFilesystem") is True, f"{name} can write its root filesystem"
            assert effective.get("capabilities", {}).get("drop") == ["ALL"], f"{name} keeps capabilities"
            assert effective.get("seccompProfile", {}).get("type") == "RuntimeDefault"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_is_given_the_settings_its_code_requires(overlay: str) -> None:
    deployments = of_kind(render(overlay), "Deployment")
    for name, required in REQUIRED_ENV.items():
        given = {env["name"] for env in main_container(deployments[name])["env"]}
        assert required <= given, f"{name} lacks {sorted(required - given)}"
        assert env_value(main_container(deployments[name]), "PORT") == str(GRPC_PORTS[name])


def settings_the_code_requires(name: str) -> set[str]:
    """The settings a service's config code reads with `required(env, "NAME")`: its config modules
    (config.py at any depth of its package) and the kit's common settings."""
    modules = [
        *sorted((ROOT / "services" / name).rglob("config.py")),
        ROOT / "services" / "kit" / "config.py",
    ]
    names = set()
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "required"
                and len(node.args) == 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                names.add(node.args[1].value)
    return names


def test_the_config_code_scan_finds_what_the_services_require() -> None:
    assert {"DATABASE_URL", "NATS_URL", "ROUTING_SERVICE_ADDR", "PII_KEYS"} <= settings_the_code_requires(
        "orders"
    )
    assert {"ORDERS_SERVICE_ADDR", "PAYMENT_WECHAT_APIV3_KEY", "PAYMENT_ALIPAY_APP_ID"} <= (
        settings_the_code_requires("aftersales")
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_is_given_every_setting_its_config_code_requires(overlay: str) -> None:
    deployments = of_kind(render(overlay), "Deployment")
    for name in GRPC_PORTS:
        given = {env["name"] for env in main_container(deployments[name])["env"]}
        missing = settings_the_code_requires(name) - given
        assert not missing, f"{name}'s config requires {sorted(missing)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_address_names_the_owners_kubernetes_service_and_port(overlay: str) -> None:
    objects = render(overlay)
    services = of_kind(objects, "Service")
    checked = set()
    for name, deployment in of_kind(objects, "Deployment").items():
        for env in main_container(deployment).get("env", []):
            if not env["name"].endswith("_SERVICE_ADDR"):
                continue
            owner = env["name"].removesuffix("_SERVICE_ADDR").lower()
            host, port = env["value"].rsplit(":", 1)
            assert services[host]["spec"]["selector"]["app.kubernetes.io/name"] == owner, env["name"]
            assert [int(port)] == [p["port"] for p in services[host]["spec"]["ports"]], env["name"]
            assert int(port) == GRPC_PORTS[owner], env["name"]
            checked.add((name, owner))
    assert {("aftersales", "orders"), ("aftersales", "inventory"), ("gateway", "aftersales")} <= checked


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_config_map_reference_names_a_key_the_overlay_defines(overlay: str) -> None:
    objects = render(overlay)
    config_maps = of_kind(objects, "ConfigMap")
    for pod in pod_templates(objects):
        for container in containers(pod):
            for env in container.get("env", []):
                reference = env.get("valueFrom", {}).get("configMapKeyRef")
                if reference:
                    assert reference["key"] in config_maps[reference["name"]]["data"], env["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_selects_one_workloads_pods_on_the_design_port(overlay: str) -> None:
    objects = render(overlay)
    for service in of_kind(objects, "Service").values():
        (workload,) = [
            w
            for w in workloads(objects).values()
            if service["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
        container_ports = {p["name"]: p["containerPort"] for p in main_container(workload)["ports"]}
        for port in service["spec"]["ports"]:
            assert port["port"] == container_ports[port["targetPort"]]
    for name, port in GRPC_PORTS.items():
        expected = EDGE_PORTS.get(name, [port])
        assert [p["port"] for p in of_kind(objects, "Service")[name]["spec"]["ports"]] == expected


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_reaches_each_owning_service_through_its_kubernetes_service(overlay: str) -> None:
    objects = render(overlay)
    gateway = main_container(of_kind(objects, "Deployment")["gateway"])
    for variable in PUBLIC_SERVICES.values():
        owner = variable.removesuffix("_SERVICE_ADDR").lower()
        host, port = env_value(gateway, variable).rsplit(":", 1)
        service = of_kind(objects, "Service")[host]
        assert service["spec"]["selector"]["app.kubernetes.io/name"] == owner
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoys_gateway_cluster_resolves_to_every_gateway_pod(overlay: str) -> None:
    cluster = next(c for c in envoy_config()["static_resources"]["clusters"] if c["name"] == "gateway")
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    address = endpoint["address"]["socket_address"]
    service = of_kind(render(overlay), "Service")[address["address"]]
    assert service["spec"]["selector"]["app.kubernetes.io/name"] == "gateway"
    assert address["port_value"] in {p["port"] for p in service["spec"]["ports"]}
    assert cluster["type"] == "STRICT_DNS" and service["spec"]["clusterIP"] == "None", (
        "Envoy balances per request only when DNS returns the pods, i.e. with a headless Service"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoys_direct_lane_clusters_resolve_to_each_owning_services_pods(overlay: str) -> None:
    objects = render(overlay)
    config = edge.render_for_pod(edge.TEMPLATE, Path("/etc/envoy"), {})
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    wanted = {**{owner: owner for owner in DIRECT_OWNERS}, "gateway-authz": "gateway"}
    for name, owner in wanted.items():
        endpoint = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        address = endpoint["address"]["socket_address"]
        service = of_kind(objects, "Service")[address["address"]]
        assert service["spec"]["selector"]["app.kubernetes.io/name"] == owner, name
        assert address["port_value"] in {p["port"] for p in service["spec"]["ports"]}, name
        # the services' own Services are not headless (their peers reach them the same way)
        assert clusters[name]["type"] == "STRICT_DNS", name
    gateway = main_container(of_kind(objects, "Deployment")["gateway"])
    assert int(env_value(gateway, "AUTHZ_PORT")) == edge.AUTHZ_PORT


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoy_reads_the_config_and_descriptor_its_init_container_renders_from_the_image(
    overlay: str, tmp_path: Path
) -> None:
    objects = render(overlay)
    pod = of_kind(objects, "Deployment")["envoy"]["spec"]["template"]["spec"]
    (renderer,) = pod["initContainers"]
    assert renderer["command"][:3] == ["python", "-m", "omsctl.envoy"]
    target = Path(renderer["command"][renderer["command"].index("--target") + 1])
    settings = of_kind(objects, "ConfigMap")["oms-config"]["data"]
    env = {
        item["name"]: settings[item["valueFrom"]["configMapKeyRef"]["key"]]
        for item in renderer.get("env", [])
    }
    config = edge.render_for_pod(edge.TEMPLATE, target, env)
    envoy = main_container(of_kind(objects, "Deployment")["envoy"])
    config_path = envoy["args"][envoy["args"].index("-c") + 1]
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    transcoder = next(
        f for f in manager["typed_config"]["http_filters"] if f["name"].endswith("grpc_json_transcoder")
    )
    assert {config_path, transcoder["typed_config"]["proto_descriptor"]} == {
        str(target / "envoy.yaml"),
        str(target / "oms.pb"),
    }

    def volumes_at_target(container: Object) -> set[str]:
        return {m["name"] for m in container["volumeMounts"] if Path(m["mountPath"]) == target}

    assert volumes_at_target(renderer) & volumes_at_target(envoy), "envoy does not see what was rendered"
    edge.main(["--target", str(tmp_path), "--descriptor", str(ROOT / "gen" / "oms.pb")])
    assert (tmp_path / "envoy.yaml").is_file() and (tmp_path / "oms.pb").is_file()


@pytest.mark.parametrize(
    ("overlay", "allowed"), [("prod", []), ("dev", ["http://localhost:*", "http://127.0.0.1:*"])]
)
def test_cors_allows_no_origin_in_prod_unless_listed_and_the_dev_origins_in_dev(
    overlay: str, allowed: list[str]
) -> None:
    settings = of_kind(render(overlay), "ConfigMap")["oms-config"]["data"]
    config = edge.render_for_pod(edge.TEMPLATE, Path("/etc/envoy"), settings)
    (virtual_host,) = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]["route_config"]["virtual_hosts"]
    policy = virtual_host["typed_per_filter_config"][edge.CORS]
    assert policy["allow_origin_string_match"] == edge.origin_matchers(allowed)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_outlive_their_prestop_sleep_and_shutdown_grace(overlay: str) -> None:
    for name, deployment in of_kind(render(overlay), "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        container = main_container(deployment)
        needed = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        if name in GRPC_PORTS:
            needed += float(env_value(container, "SHUTDOWN_GRACE_SECONDS"))
        assert pod["terminationGracePeriodSeconds"] > needed, f"{name} is killed before it can drain"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", DATABASE_SERVICES)
def test_each_service_migrates_its_own_database_before_serving(overlay: str, name: str) -> None:
    deployment = of_kind(render(overlay), "Deployment")[name]
    (migrate,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert migrate["command"] == ["python", "-m", f"services.{name}", "migrate"]
    assert migrate["image"] == main_container(deployment)["image"]

    def database(container: Object) -> Object:
        return next(e["valueFrom"] for e in container["env"] if e["name"] == "DATABASE_URL")

    assert database(migrate) == database(main_container(deployment))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_and_disruption_budgets_target_their_deployments(overlay: str) -> None:
    objects = render(overlay)
    deployments = of_kind(objects, "Deployment")
    for name, autoscaler in of_kind(objects, "HorizontalPodAutoscaler").items():
        assert autoscaler["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 1 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
        assert autoscaler["spec"]["minReplicas"] == deployments[name]["spec"]["replicas"]
    for name, budget in of_kind(objects, "PodDisruptionBudget").items():
        assert budget["spec"]["selector"] == workloads(objects)[name]["spec"]["selector"]
        assert "minAvailable" not in budget["spec"], "a minAvailable budget blocks drains of one replica"


def test_dev_runs_one_replica_of_each_service() -> None:
    objects = render("dev")
    assert {name: d["spec"]["replicas"] for name, d in of_kind(objects, "Deployment").items()} == {
        name: 1 for name in (*GRPC_PORTS, "envoy", *SANDBOX_DEPLOYMENTS["dev"])
    }
    assert all(h["spec"]["maxReplicas"] == 1 for h in of_kind(objects, "HorizontalPodAutoscaler").values())


def test_prod_runs_at_least_three_replicas_of_each_service_on_separate_nodes() -> None:
    objects = render("prod")
    for name, deployment in of_kind(objects, "Deployment").items():
        assert deployment["spec"]["replicas"] >= 3, name
        constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        by_node = next(c for c in constraints if c["topologyKey"] == "kubernetes.io/hostname")
        assert by_node["whenUnsatisfiable"] == "DoNotSchedule" and by_node["maxSkew"] == 1
        assert by_node["labelSelector"] == deployment["spec"]["selector"]
    for autoscaler in of_kind(objects, "HorizontalPodAutoscaler").values():
        assert autoscaler["spec"]["minReplicas"] >= 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schema(overlay: str) -> None:
    import kubernetes_validate

    for item in [*render(overlay), *documents(K8S / "base" / "secrets.example.yaml")]:
        try:
            kubernetes_validate.validate(item, OLDEST_SUPPORTED_KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            pytest.fail(f"{item['kind']}/{item['metadata']['name']}: {where}: {error.message}")


def pods_selected(policy: Object, deployments: dict[str, Object]) -> set[str]:
    selector = policy["spec"]["podSelector"].get("matchLabels", {})
    return {
        name
        for name, deployment in deployments.items()
        if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_behind_a_default_deny_ingress_policy(overlay: str) -> None:
    objects = render(overlay)
    deny = [
        policy
        for policy in of_kind(objects, "NetworkPolicy").values()
        if policy["spec"]["podSelector"] == {} and "ingress" not in policy["spec"]
    ]
    assert len(deny) == 1 and deny[0]["spec"]["policyTypes"] == ["Ingress"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_admits_only_its_callers_in_the_peer_graph_on_its_grpc_port(overlay: str) -> None:
    objects = render(overlay)
    deployments = of_kind(objects, "Deployment")
    policies = [p for p in of_kind(objects, "NetworkPolicy").values() if p["spec"]["podSelector"] != {}]
    for name, callers in CALLERS.items():
        (policy,) = [p for p in policies if name in pods_selected(p, deployments)]
        assert pods_selected(policy, deployments) == {name}
        sources, ports = set(), set()
        scrapers = []
        for rule in policy["spec"]["ingress"]:
            if any("namespaceSelector" in peer for peer in rule["from"]):
                scrapers.append(rule)  # Prometheus: checked below, on the metrics port only
                continue
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, f"{name} admits more than pods of this namespace"
                (source,) = pods_selected({"spec": peer}, deployments)
                sources.add(source)
            ports |= {(port["protocol"], port["port"]) for port in rule["ports"]}
        assert sources == callers, name
        assert ports == {("TCP", port) for port in EDGE_PORTS.get(name, [GRPC_PORTS[name]])}, name
        # the monitoring namespace reaches the metrics port and nothing else
        (scrape,) = scrapers
        assert scrape["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ], name
        metrics_port = env_value(main_container(deployments[name]), "METRICS_PORT")
        assert scrape["ports"] == [{"protocol": "TCP", "port": int(metrics_port)}], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_envoy_is_open_to_the_outside_and_only_on_its_listener(overlay: str) -> None:
    objects = render(overlay)
    deployments = of_kind(objects, "Deployment")
    open_rules = [
        (policy, rule)
        for policy in of_kind(objects, "NetworkPolicy").values()
        for rule in policy["spec"].get("ingress", [])
        if "from" not in rule
    ]
    assert [pods_selected(policy, deployments) for policy, _ in open_rules] == [{"envoy"}]
    container = main_container(deployments["envoy"])
    assert open_rules[0][1]["ports"] == [{"protocol": "TCP", "port": container["ports"][0]["containerPort"]}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_listen_on_every_interface_and_sign_with_their_own_identity_secret(overlay: str) -> None:
    deployments = of_kind(render(overlay), "Deployment")
    for name in GRPC_PORTS:
        container = main_container(deployments[name])
        assert env_value(container, "HOST") == "0.0.0.0"
        for env in container["env"]:
            if env["name"].startswith("IDENTITY_"):
                assert env["valueFrom"]["secretKeyRef"]["name"] == f"{name}-identity"


def test_each_example_identity_secret_trusts_the_gateway_and_the_services_callers_only() -> None:
    secrets = {s["metadata"]["name"]: s for s in documents(K8S / "base" / "secrets.example.yaml")}
    for name, callers in CALLERS.items():
        trusted = json.loads(secrets[f"{name}-identity"]["stringData"]["IDENTITY_TRUSTED_KEYS"])
        assert {entry["issuer"] for entry in trusted.values()} == ({"gateway"} | callers) - {"envoy"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_readiness_asks_for_the_readiness_health_name_and_liveness_for_the_process(overlay: str) -> None:
    deployments = of_kind(render(overlay), "Deployment")
    for name in GRPC_PORTS:
        container = main_container(deployments[name])
        assert container["readinessProbe"]["grpc"].get("service") == "readiness", name
        assert container["livenessProbe"]["grpc"].get("service", "") == "", name


@pytest.mark.parametrize(("overlay", "replicas"), [("dev", "3"), ("prod", "3")])
def test_every_service_keeps_its_streams_with_the_overlays_replicas_and_limits(
    overlay: str, replicas: str
) -> None:
    objects = render(overlay)
    config = find(objects, "ConfigMap", "oms-config")["data"]
    assert config["STREAM_REPLICAS"] == replicas
    deployments = of_kind(objects, "Deployment")
    for name in GRPC_PORTS:
        given = {entry["name"] for entry in main_container(deployments[name])["env"]}
        assert {"STREAM_REPLICAS", "STREAM_MAX_AGE_SECONDS", "STREAM_MAX_BYTES"} <= given, name


def _secret_reference(container: Object, name: str) -> tuple[str, str]:
    reference = next(e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == name)
    return reference["name"], reference["key"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_and_logistics_read_the_one_kuaidi100_salt_and_the_sandbox_their_accounts(
    overlay: str,
) -> None:
    deployments = of_kind(render(overlay), "Deployment")
    gateway, logistics = main_container(deployments["gateway"]), main_container(deployments["logistics"])
    salt = ("carrier-push", "KUAIDI100_PUSH_SALT")
    assert _secret_reference(gateway, "KUAIDI100_PUSH_SALT") == _secret_reference(
        logistics, "KUAIDI100_PUSH_SALT"
    )
    assert _secret_reference(gateway, "KUAIDI100_PUSH_SALT") == salt
    if "carrier-sandbox" not in deployments:
        return
    sandbox = main_container(deployments["carrier-sandbox"])
    for account in CARRIER_ACCOUNTS:
        assert _secret_reference(sandbox, f"CARRIER_SANDBOX_{account}") == _secret_reference(
            logistics, account
        )
    assert _secret_reference(sandbox, "SF_PUSH_TOKEN") == _secret_reference(gateway, "SF_PUSH_TOKEN")
    push_url = env_value(sandbox, "CARRIER_SANDBOX_PUSH_URL")
    assert push_url.startswith("http://envoy:8080/v1/webhooks/tracking/sf?token=$(SF_PUSH_TOKEN)")
    names = [e["name"] for e in sandbox["env"]]
    # Kubernetes expands $(VAR) only from variables defined before it
    assert names.index("SF_PUSH_TOKEN") < names.index("CARRIER_SANDBOX_PUSH_URL")
    config = of_kind(render(overlay), "ConfigMap")["oms-config"]["data"]
    urls = ("SF_API_URL", "KUAIDI100_API_URL", "KUAIDI100_POLL_URL", "CAINIAO_API_URL")
    assert {config[key] for key in urls} == {"http://carrier-sandbox:18010"}
    assert config["KUAIDI100_CALLBACK_URL"] == "http://envoy:8080/v1/webhooks/tracking/kuaidi100"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_aftersales_refunds_through_the_real_providers_in_prod_and_the_payment_sandbox_in_dev(
    overlay: str,
) -> None:
    objects = render(overlay)
    config = of_kind(objects, "ConfigMap")["oms-config"]["data"]
    assert {key: config[key] for key in PAYMENT_API_URLS[overlay]} == PAYMENT_API_URLS[overlay]
    deployments = of_kind(objects, "Deployment")
    for spec in SERVICES:
        if not spec.payments:
            continue
        container = main_container(deployments[spec.name])
        for name in PAYMENT_API_URLS[overlay]:
            reference = next(e["valueFrom"]["configMapKeyRef"] for e in container["env"] if e["name"] == name)
            assert reference == {"name": "oms-config", "key": name}
        for name in PAYMENT_ACCOUNTS:
            assert _secret_reference(container, name) == (f"{spec.name}-payments", name)
    if overlay == "dev":
        sandbox = of_kind(objects, "Service")["payment-sandbox"]
        assert [p["port"] for p in sandbox["spec"]["ports"]] == [18020]


def test_the_payment_sandbox_shares_aftersales_accounts_and_holds_the_other_halves_of_its_keys() -> None:
    deployments = of_kind(render("dev"), "Deployment")
    aftersales = main_container(deployments["aftersales"])
    sandbox = main_container(deployments["payment-sandbox"])
    assert env_value(sandbox, "PAYMENT_SANDBOX_HOST") == "0.0.0.0"
    assert env_value(sandbox, "PAYMENT_SANDBOX_PORT") == "18020"
    assert sandbox["ports"] == [{"name": "http", "containerPort": 18020}]
    for name in PAYMENT_SANDBOX_KEYS:
        reference = _secret_reference(sandbox, f"PAYMENT_SANDBOX_{name}")
        if name in PAYMENT_CLIENT_KEYS:
            # account numbers, serials, the APIv3 key: the very values after-sales calls with
            assert reference == _secret_reference(aftersales, f"PAYMENT_{name}")
        else:
            # the merchant's public keys and the providers' private keys: never in after-sales' Secret
            assert reference == ("payment-sandbox", f"PAYMENT_SANDBOX_{name}")
    secrets = {s["metadata"]["name"]: s for s in documents(K8S / "base" / "secrets.example.yaml")}
    assert set(secrets["aftersales-payments"]["stringData"]) == PAYMENT_ACCOUNTS
    assert set(secrets["payment-sandbox"]["stringData"]) == {
        f"PAYMENT_SANDBOX_{name}" for name in PAYMENT_SANDBOX_KEYS if name not in PAYMENT_CLIENT_KEYS
    }
    policy = of_kind(render("dev"), "NetworkPolicy")["payment-sandbox-ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "aftersales"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 18020}]


def test_in_dev_the_gateway_texts_through_the_sms_sandbox_which_checks_its_own_access_key() -> None:
    objects = render("dev")
    deployments = of_kind(objects, "Deployment")
    gateway = main_container(deployments["gateway"])
    sandbox = main_container(deployments["sms-sandbox"])
    config = of_kind(objects, "ConfigMap")["oms-config"]["data"]
    assert (config["ALERT_SINKS"], config["ALERT_SMS_URL"]) == ("log,sms", "http://sms-sandbox:18040/")
    for name in ("ACCESS_KEY_ID", "ACCESS_KEY_SECRET"):
        assert _secret_reference(gateway, f"ALERT_SMS_{name}") == ("gateway-sms", f"ALERT_SMS_{name}")
        assert _secret_reference(sandbox, f"SMS_SANDBOX_{name}") == ("gateway-sms", f"ALERT_SMS_{name}")
    assert [p["port"] for p in of_kind(objects, "Service")["sms-sandbox"]["spec"]["ports"]] == [18040]
    (rule,) = of_kind(objects, "NetworkPolicy")["sms-sandbox-ingress"]["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    assert "sms-sandbox" not in of_kind(render("prod"), "Deployment")


# ---- the project's own policy (what kube-linter would check), over every workload of every overlay ----


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_probed_for_readiness_and_liveness(overlay: str) -> None:
    for name, workload in workloads(render(overlay)).items():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in container, f"{name}/{container['name']} has no {probe}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_pod_shares_the_nodes_namespaces_files_or_privileges(overlay: str) -> None:
    for pod in pod_templates(render(overlay)):
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
        for volume in pod.get("volumes", []):
            # the volume types the `restricted` Pod Security profile admits
            assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, f"{volume['name']} is not admitted"
        for container in containers(pod):
            assert not container.get("securityContext", {}).get("privileged", False), container["name"]
            assert all("hostPort" not in port for port in container.get("ports", [])), container["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_names_a_fixed_release(overlay: str) -> None:
    for pod in pod_templates(render(overlay)):
        for container in containers(pod):
            image = container["image"]
            if "@sha256:" in image:
                continue
            repository, _, tag = image.rpartition(":")
            assert repository and "/" not in tag, f"{container['name']}: {image} has no tag"
            assert tag != "latest" and not tag.endswith("-latest"), f"{container['name']}: {image} moves"
            if overlay == "prod":
                assert tag != "dev", f"{container['name']}: prod runs a development build"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_but_the_sandboxes_has_one_disruption_budget(overlay: str) -> None:
    objects = render(overlay)
    budgets = list(of_kind(objects, "PodDisruptionBudget").values())
    for name, workload in workloads(objects).items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        expected = 0 if name in SANDBOX_DEPLOYMENTS[overlay] else 1
        assert len(covering) == expected, f"{name} is covered by {len(covering)} budgets"


# ---- the dev overlay's dependencies: Postgres, Redis, NATS in the cluster ----


def test_dev_reaches_its_own_postgres_redis_and_a_three_node_jetstream_cluster() -> None:
    objects = render("dev")
    config = of_kind(objects, "ConfigMap")["oms-config"]["data"]
    services = of_kind(objects, "Service")
    for name, (setting, port) in DEPENDENCY_SETTINGS.items():
        if setting in config:
            address = config[setting].split("//", 1)[1].split("/", 1)[0]
            assert address == f"{name}:{port}", setting
        assert [p["port"] for p in services[name]["spec"]["ports"]] == [port]
    nats = of_kind(objects, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3 and nats["spec"]["podManagementPolicy"] == "Parallel"
    assert config["STREAM_REPLICAS"] == str(nats["spec"]["replicas"])
    routes = services[nats["spec"]["serviceName"]]
    assert routes["spec"]["clusterIP"] == "None" and routes["spec"]["publishNotReadyAddresses"] is True
    text = of_kind(objects, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    store = re.search(r"store_dir:\s*(\S+)", text)
    assert store, "JetStream without file storage"
    (data,) = [m for m in main_container(nats)["volumeMounts"] if m["name"] == "data"]
    assert Path(store[1]).is_relative_to(data["mountPath"]), "the streams are not on the volume"
    assert [t["metadata"]["name"] for t in nats["spec"]["volumeClaimTemplates"]] == ["data"]
    assert set(re.findall(r"nats://([\w.-]+):6222", text)) == {
        f"nats-{i}.{nats['spec']['serviceName']}" for i in range(3)
    }


def test_each_dependency_admits_exactly_the_services_given_its_setting() -> None:
    objects = render("dev")
    deployments = of_kind(objects, "Deployment")
    policies = of_kind(objects, "NetworkPolicy")
    for name, (setting, port) in DEPENDENCY_SETTINGS.items():
        clients = {
            deployment
            for deployment, workload in deployments.items()
            if any(
                e["name"] == setting
                for c in containers(workload["spec"]["template"]["spec"])
                for e in c.get("env", [])
            )
        }
        policy = policies[f"{name}-ingress"]["spec"]
        assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
        (clients_rule,) = [r for r in policy["ingress"] if {"protocol": "TCP", "port": port} in r["ports"]]
        admitted = set().union(*(pods_selected({"spec": peer}, deployments) for peer in clients_rule["from"]))
        assert admitted == clients, name
    (routes,) = [r for r in policies["nats-ingress"]["spec"]["ingress"] if r["ports"][0]["port"] == 6222]
    assert routes["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "nats"}}}]


def test_the_dev_postgres_creates_each_services_role_and_database_from_the_credentials_secret() -> None:
    objects = render("dev")
    script = of_kind(objects, "ConfigMap")["postgres-init"]["data"]["create-service-databases.sh"]
    (listed,) = re.findall(r"for service in ([\w ]+); do", script)
    assert listed.split() == DATABASE_SERVICES
    postgres = main_container(of_kind(objects, "StatefulSet")["postgres"])
    assert postgres["envFrom"] == [{"secretRef": {"name": k8s.POSTGRES_SECRET}}]
    assert '"$(echo "$service" | tr a-z A-Z)_PASSWORD"' in script
    assert all(k8s.password_setting(name) == f"{name.upper()}_PASSWORD" for name in DATABASE_SERVICES)
    mounts = {m["name"]: m["mountPath"] for m in postgres["volumeMounts"]}
    assert mounts["init"] == "/docker-entrypoint-initdb.d"
    assert Path(env_value(postgres, "PGDATA")).is_relative_to(mounts["data"])


# ---- the Secrets: every one the dev overlay reads comes from `omsctl k8s-secrets`, prod's are named ----


def secrets_read(objects: list[Object]) -> dict[str, set[str]]:
    """Each Secret the pods read and the keys they take from it (None: all of them, by envFrom)."""
    read: dict[str, set[str]] = {}
    for pod in pod_templates(objects):
        for container in containers(pod):
            for env in container.get("env", []):
                reference = env.get("valueFrom", {}).get("secretKeyRef")
                if reference and not reference.get("optional"):
                    read.setdefault(reference["name"], set()).add(reference["key"])
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    read.setdefault(source["secretRef"]["name"], set())
    return read


@functools.cache
def _dev_secrets() -> tuple[Object, ...]:
    with tempfile.TemporaryDirectory() as home:
        return tuple(k8s.dev_secrets(Path(home)))


def test_omsctl_k8s_secrets_makes_every_secret_and_key_the_dev_overlay_reads() -> None:
    made = {s["metadata"]["name"]: s for s in _dev_secrets()}
    for name, keys in secrets_read(render("dev")).items():
        assert name in made, f"the dev overlay reads {name}, which `omsctl k8s-secrets` does not make"
        assert keys <= set(made[name]["stringData"]), (
            f"{name} lacks {sorted(keys - set(made[name]['stringData']))}"
        )
        assert all(made[name]["stringData"].values()), f"{name} has an empty value"
        assert made[name]["metadata"]["namespace"] == NAMESPACE
    assert set(made) == set(secrets_read(render("dev"))), "it makes Secrets nothing reads"


def test_the_dev_secrets_agree_with_each_other() -> None:
    made = {s["metadata"]["name"]: s["stringData"] for s in _dev_secrets()}
    credentials = made[k8s.POSTGRES_SECRET]
    for name in DATABASE_SERVICES:
        url = urlparse(made[f"{name}-db"]["DATABASE_URL"])
        assert (url.username, url.password, url.path) == (
            name,
            credentials[f"{name.upper()}_PASSWORD"],
            f"/{name}",
        )
        assert (url.hostname, url.port) == ("postgres", DEPENDENCY_SETTINGS["postgres"][1])
    signing = {
        made[f"{spec.name}-identity"]["IDENTITY_SIGNING_KID"]: public_key_of(
            made[f"{spec.name}-identity"]["IDENTITY_SIGNING_KEY"]
        )
        for spec in SERVICES
    }
    for name, callers in CALLERS.items():
        trusted = json.loads(made[f"{name}-identity"]["IDENTITY_TRUSTED_KEYS"])
        assert {entry["issuer"] for entry in trusted.values()} == ({"gateway"} | callers) - {"envoy"}
        assert all(signing[kid] == entry["public_key"] for kid, entry in trusted.items()), name
    # the gateway and logistics check and send the same Kuaidi100 salt; the sandbox pushes with it
    assert len(made["carrier-push"]["KUAIDI100_PUSH_SALT"]) >= 16


def test_the_readme_names_every_secret_prod_reads_and_how_dev_gets_its_own() -> None:
    readme = (K8S / "README.md").read_text()
    for name in secrets_read(render("prod")):
        assert f"`{name}`" in readme, f"deploy/k8s/README.md does not name the Secret {name}"
    assert "omsctl k8s-secrets" in readme


def test_the_dev_secrets_are_valid_kubernetes_objects() -> None:
    import kubernetes_validate

    for item in _dev_secrets():
        kubernetes_validate.validate(item, OLDEST_SUPPORTED_KUBERNETES, strict=True)


def test_the_renderer_here_and_kustomize_render_the_same_objects() -> None:
    """kustomize itself, where kubectl is installed (it is not a dependency of the project): the same
    objects as the renderer of these tests, each valid against the schema."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here: the renderer of this file stands in for kustomize")
    import kubernetes_validate

    for overlay in OVERLAYS:
        output = subprocess.run(
            [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rendered = [item for item in yaml.safe_load_all(output) if item]

        def names(items: list[Object]) -> set[tuple[str, str]]:
            # kustomize suffixes generated ConfigMaps with their hash; this renderer does not
            return {(o["kind"], re.sub(r"^(oms-config)-\w+$", r"\1", o["metadata"]["name"])) for o in items}

        assert names(rendered) == names(render(overlay)), overlay
        for item in rendered:
            kubernetes_validate.validate(item, OLDEST_SUPPORTED_KUBERNETES, strict=True)
