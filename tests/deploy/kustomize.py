"""deploy/k8s rendered as `kubectl apply -k` would, for the fields those kustomizations use (resources,
namespace, images, replicas, patches of maps): no kustomize binary and no network in a test run. A
kustomization that uses anything else fails here, so the test never checks less than gets applied."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images", "replicas", "patches"}


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _merge(target: dict, patch: dict, where: str) -> None:
    """A strategic-merge patch of maps only (lists would need kustomize's merge keys)."""
    for key, value in patch.items():
        if isinstance(value, list):
            raise AssertionError(f"{where}: a list in a patch ({key}) is more than this renderer does")
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, f"{where}.{key}")
        else:
            target[key] = copy.deepcopy(value)


def image_name(image: str) -> str:
    """registry:5000/quanzu:1.0@sha256:… → registry:5000/quanzu (a tag's colon comes after the last slash)."""
    image = image.split("@")[0]
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':')[0]}" if head else last.split(":")[0]


def pod_specs(doc: dict) -> list[dict]:
    if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return [doc["spec"]["template"]["spec"]]
    return []


def containers(doc: dict) -> list[dict]:
    return [c for spec in pod_specs(doc) for c in spec.get("initContainers", []) + spec["containers"]]


def render(directory: Path) -> list[dict]:
    k = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert set(k) <= SUPPORTED, f"{directory}: kustomization fields {set(k) - SUPPORTED} are not rendered in tests"
    docs: list[dict] = []
    for resource in k["resources"]:
        path = (directory / resource).resolve()
        docs += render(path) if path.is_dir() else load_docs(path)

    def find(kind: str, name: str) -> dict:
        (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
        return found

    for p in k.get("patches", []):
        assert set(p) == {"path"}, p
        for patch in load_docs(directory / p["path"]):
            target = find(patch["kind"], patch["metadata"]["name"])
            assert target["apiVersion"] == patch["apiVersion"]
            _merge(target, {key: v for key, v in patch.items() if key not in ("apiVersion", "kind", "metadata")},
                   str(directory / p["path"]))
    for r in k.get("replicas", []):
        find("Deployment", r["name"])["spec"]["replicas"] = r["count"]
    for image in k.get("images", []):
        for doc in docs:
            for c in containers(doc):
                if image_name(c["image"]) == image["name"]:
                    name = image["name"]
                    c["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    if "namespace" in k:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = k["namespace"]
    return docs
