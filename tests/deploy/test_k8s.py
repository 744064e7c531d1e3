"""deploy/k8s: every object validates offline against the Kubernetes JSON schemas (the ones
kubernetes-validate ships; no cluster, no network), and the wiring holds — real `quanzu` commands,
probes on /readyz and /healthz, settings that quanzu knows, placeholders it refuses, one image."""
from __future__ import annotations

import kubernetes_validate
import pydantic
import pytest
import typer.main

from service.cli import app as cli
from service.core.settings import Settings
from tests.data import ROOT
from tests.deploy.kustomize import containers, image_name, load_docs, pod_specs, render

K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes these manifests are for (HPA autoscaling/v2 and PDB policy/v1 are GA there)
# and the newest whose schemas the validator ships.
VERSIONS = ("1.25", kubernetes_validate.latest_version())
IMAGE = "registry.example.invalid/quanzu"


@pytest.fixture(scope="module")
def city() -> list[dict]:
    return render(K8S / "base")


@pytest.fixture(scope="module")
def district() -> list[dict]:
    return render(K8S / "overlays" / "district")


def secret_example() -> dict:
    (secret,) = load_docs(K8S / "base" / "secret.example.yaml")
    return secret


def one(docs: list[dict], kind: str, name: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def deployment_container(docs: list[dict], name: str) -> dict:
    (c,) = one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_offline_against_the_kubernetes_schemas(city, district, version):
    for doc in city + district + [secret_example()]:
        try:
            kubernetes_validate.validate(doc, version, strict=True)  # strict: an unknown field is an error
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {exc.message} at {list(exc.path)}")
    kinds = {(d["apiVersion"], d["kind"]) for d in city}
    assert {("apps/v1", "Deployment"), ("autoscaling/v2", "HorizontalPodAutoscaler"), ("batch/v1", "Job"),
            ("v1", "Service"), ("v1", "ConfigMap"), ("policy/v1", "PodDisruptionBudget"),
            ("v1", "Namespace")} <= kinds
    assert all(d["metadata"].get("namespace") == "quanzu" for d in city if d["kind"] != "Namespace")


def test_commands_are_real_quanzu_commands_and_migrations_run_first(city):
    group = typer.main.get_command(cli)
    commands = {}
    for doc in city:
        for c in containers(doc):
            argv = c["command"]
            assert argv[0] == "quanzu", c["name"]
            sub = group.commands.get(argv[1])
            assert sub is not None, f"{argv}: no such quanzu command"
            sub.make_context(argv[1], list(argv[2:]))  # an unknown option or a bad value raises
            commands.setdefault(doc["metadata"]["name"], []).append(argv)
    assert commands["quanzu-migrate"] == [["quanzu", "migrate"]]
    assert commands["quanzu-api"][-1][:2] == ["quanzu", "serve"] and "0.0.0.0" in commands["quanzu-api"][-1]
    assert commands["quanzu-worker"][-1] == ["quanzu", "worker"]  # the rq worker, which runs the clock too
    assert commands["quanzu-urgent-worker"][-1] == ["quanzu", "worker", "--urgent"]  # leads that may be P0
    assert commands["quanzu-dialer"][-1] == ["quanzu", "worker", "--dial"]
    for name in ("quanzu-api", "quanzu-worker", "quanzu-urgent-worker", "quanzu-dialer"):  # every pod migrates (locked, idempotent) first
        (init,) = one(city, "Deployment", name)["spec"]["template"]["spec"]["initContainers"]
        assert init["command"] == ["quanzu", "migrate"]
    job = one(city, "Job", "quanzu-migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_the_api_is_probed_scaled_and_protected(city):
    api = one(city, "Deployment", "quanzu-api")
    c = deployment_container(city, "quanzu-api")
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
    assert "--port" in c["command"] and int(c["command"][c["command"].index("--port") + 1]) == port
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert "replicas" not in api["spec"]  # the HPA owns the count; an apply must not reset it
    hpa = one(city, "HorizontalPodAutoscaler", "quanzu-api")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "quanzu-api"}
    assert hpa["spec"]["minReplicas"] >= 2 and [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    pdb = one(city, "PodDisruptionBudget", "quanzu-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a node can still be drained
    service = one(city, "Service", "quanzu-api")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    for d in city:
        if d["kind"] == "Deployment":
            assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    assert one(city, "Deployment", "quanzu-dialer")["spec"]["strategy"] == {"type": "Recreate"}


def test_only_the_project_s_image_and_every_container_has_resources(city):
    for doc in city:
        for c in containers(doc):
            assert image_name(c["image"]) == IMAGE and c["image"] == f"{IMAGE}:0.1.0", c["image"]
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(c["resources"]["limits"])
        for spec in pod_specs(doc):
            assert spec["securityContext"]["runAsNonRoot"] is True
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = {s["securityContext"]["runAsUser"] for d in city for s in pod_specs(d)}
    assert uid == {10001} and "USER 10001" in dockerfile


def test_every_setting_is_one_quanzu_knows_and_comes_from_the_config_map_or_the_secret(city, monkeypatch):
    config = one(city, "ConfigMap", "quanzu-config")["data"]
    secret = secret_example()
    known = {name.upper() for name in Settings.model_fields}
    assert set(config) <= known and set(secret["stringData"]) <= known
    assert {"SECRET_KEY", "AUDIT_KEY", "DATABASE_URL", "REDIS_URL"} <= set(secret["stringData"])
    assert not {"SECRET_KEY", "AUDIT_KEY", "DATABASE_URL", "REDIS_URL", "SMS_GATEWAY_TOKEN"} & set(config)
    assert "secret.example.yaml" not in (K8S / "base" / "kustomization.yaml").read_text().split("resources:")[1]
    for doc in city:
        for c in containers(doc):
            assert not c.get("env"), "settings come from envFrom only"
            refs = {(k, v["name"]) for e in c["envFrom"] for k, v in e.items()}
            assert refs == {("configMapRef", "quanzu-config"), ("secretRef", secret["metadata"]["name"])}

    def settings_of(env: dict) -> Settings:
        for name in known:
            monkeypatch.delenv(name, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        return Settings()

    with pytest.raises(pydantic.ValidationError) as refused:  # the placeholders are not a deployment
        settings_of({**config, **secret["stringData"]})
    assert {e["loc"][0] for e in refused.value.errors()} >= {"secret_key", "audit_key"}
    real = {k: v.replace("CHANGE-ME", "x" * 48) for k, v in secret["stringData"].items()}
    s = settings_of({**config, **real})
    assert s.database_url.startswith("postgresql://") and s.redis_url.startswith("redis://")
    assert s.metrics_port == 9100 and s.log_json is True


def test_scrape_annotations_point_at_the_metrics_ports(city):
    metrics_port = one(city, "ConfigMap", "quanzu-config")["data"]["METRICS_PORT"]
    for name in ("quanzu-api", "quanzu-worker", "quanzu-dialer"):
        template = one(city, "Deployment", name)["spec"]["template"]
        notes = template["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/path"] == "/metrics"
        ports = {str(p["containerPort"]) for p in deployment_container(city, name)["ports"]}
        assert notes["prometheus.io/port"] in ports
        if name != "quanzu-api":
            assert notes["prometheus.io/port"] == metrics_port


def test_postgres_and_redis_are_external_services(city):
    for name in ("postgres", "redis"):
        service = one(city, "Service", name)
        assert service["spec"]["type"] == "ExternalName" and service["spec"]["externalName"]
    urls = secret_example()["stringData"]
    assert "@postgres:5432/" in urls["DATABASE_URL"] and "@redis:6379/" in urls["REDIS_URL"]


def test_the_district_overlay_is_the_city_smaller(city, district):
    assert one(district, "Deployment", "quanzu-worker")["spec"]["replicas"] == 1
    assert one(district, "Deployment", "quanzu-urgent-worker")["spec"]["replicas"] == 1
    assert one(city, "Deployment", "quanzu-worker")["spec"]["replicas"] >= 2
    hpa = one(district, "HorizontalPodAutoscaler", "quanzu-api")["spec"]
    assert hpa["maxReplicas"] == 3 and hpa["minReplicas"] == 2 and hpa["metrics"]  # patched, the rest kept
    assert {(d["kind"], d["metadata"]["name"]) for d in district} == {(d["kind"], d["metadata"]["name"]) for d in city}
