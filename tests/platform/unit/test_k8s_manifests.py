"""The Kubernetes manifests in `deploy/k8s/` validate offline and say what serving relies on.

Schema: `tests/support/k8s_schema.json` (closed: a misspelt field fails) through
`tests.support.schema_check`. Then what no schema knows: probes on BentoML's `/readyz` and
`/livez` on a declared port, CPU requests for the HPA, workers within the CPU limit, secrets only
by reference, every `RTML_*` variable a real setting (pydantic ignores an unknown one silently),
selectors that select, the HPA and the Service aimed at the Deployment, the kustomization
complete. Each check is shown to fail on a broken copy.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtml.serving.auth import HEALTH_PATHS
from rtml.settings import SCENARIO_KNOBS, Settings
from tests.support.schema_check import errors

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s"
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "support" / "k8s_schema.json")
                    .read_text())
SECRET_SETTINGS = {"RTML_API_KEYS", "RTML_REDIS_PASSWORD"}
BENTOML_PORT = 3000


def _docs() -> dict[str, dict[str, Any]]:
    """Every YAML document under deploy/k8s, by `folder/file.yaml#kind`."""
    out = {}
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[f"{path.relative_to(K8S)}#{doc['kind']}"] = doc
    return out


DOCS = _docs()


def _of(kind: str, docs: dict[str, dict] = DOCS) -> list[dict]:
    return [d for d in docs.values() if d["kind"] == kind]


def schema_problems(doc: dict) -> list[str]:
    """Schema violations of one manifest; a kind the schema does not describe is one too."""
    if doc.get("kind") not in SCHEMA["definitions"]:
        return [f"$.kind: no schema for {doc.get('kind')!r}"]
    return errors(doc, SCHEMA["definitions"][doc["kind"]], root=SCHEMA)


def _cpu(q: str | int | float) -> float:
    text = str(q)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _bytes(q: str | int) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    text = str(q)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def _known_setting(name: str) -> bool:
    """`RTML_<FIELD>` for a platform setting, `RTML_<SCENARIO>__<KNOB>` for a scenario's."""
    field = name.removeprefix("RTML_").lower()
    if "__" in field:
        return field.split("__", 1)[1] in SCENARIO_KNOBS
    return field in Settings.model_fields and field not in SCENARIO_KNOBS


def deployment_problems(dep: dict) -> list[str]:
    """What a Deployment of an rtml service must say beyond its schema."""
    out = []
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"].get("labels", {})
    if not spec["selector"]["matchLabels"].items() <= labels.items():
        out.append("selector does not select the pod template's labels")
    for c in pod["containers"]:
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if BENTOML_PORT not in ports.values():
            out.append(f"{c['name']}: no containerPort {BENTOML_PORT} (bentoml serve)")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("path") != path:
                out.append(f"{c['name']}: {probe} is not an HTTP GET of {path}")
            port = get.get("port")
            if port not in ports and port not in ports.values():
                out.append(f"{c['name']}: {probe} port {port!r} is not a declared port")
        res = c.get("resources", {})
        req, lim = res.get("requests", {}), res.get("limits", {})
        if not {"cpu", "memory"} <= req.keys() or not {"cpu", "memory"} <= lim.keys():
            out.append(f"{c['name']}: cpu and memory requests and limits are all needed")
            continue
        if _cpu(req["cpu"]) > _cpu(lim["cpu"]) or _bytes(req["memory"]) > _bytes(lim["memory"]):
            out.append(f"{c['name']}: a request above its limit")
        env = {e["name"]: e for e in c.get("env", [])}
        workers = env.get("RTML_SERVE_WORKERS", {}).get("value")
        if workers is None or not workers.isdigit() or int(workers) < 1:
            out.append(f"{c['name']}: RTML_SERVE_WORKERS must be set to a whole number")
        elif int(workers) > math.ceil(_cpu(lim["cpu"])):
            out.append(f"{c['name']}: {workers} workers on a {lim['cpu']} CPU limit")
        for name, e in env.items():
            if name.startswith("RTML_") and not _known_setting(name):
                out.append(f"{c['name']}: {name} is not an rtml setting")
            if name in SECRET_SETTINGS and "secretKeyRef" not in e.get("valueFrom", {}):
                out.append(f"{c['name']}: {name} must come from a Secret (secretKeyRef)")
        for name in SECRET_SETTINGS - env.keys():
            out.append(f"{c['name']}: {name} is not set from the Secret")
    return out


def wiring_problems(docs: dict[str, dict]) -> list[str]:
    """Service, HPA and PDB aimed at the Deployment; the kustomization lists every file."""
    out = []
    deployments = {d["metadata"]["name"]: d for d in _of("Deployment", docs)}
    for svc in _of("Service", docs):
        targets = [d for d in deployments.values() if svc["spec"]["selector"].items()
                   <= d["spec"]["template"]["metadata"]["labels"].items()]
        if len(targets) != 1:
            out.append(f"Service {svc['metadata']['name']} selects {len(targets)} deployments")
            continue
        names = {p.get("name") for c in targets[0]["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            if port.get("targetPort") not in names | {BENTOML_PORT}:
                out.append(f"Service {svc['metadata']['name']}: targetPort "
                           f"{port.get('targetPort')!r} is no container port")
    for hpa in _of("HorizontalPodAutoscaler", docs):
        ref, spec = hpa["spec"]["scaleTargetRef"], hpa["spec"]
        if ref["kind"] != "Deployment" or ref["name"] not in deployments:
            out.append(f"HPA {hpa['metadata']['name']} scales no Deployment here")
        if not any(m["type"] == "Resource" and m["resource"]["name"] == "cpu"
                   and m["resource"]["target"]["type"] == "Utilization"
                   for m in spec.get("metrics", [])):
            out.append(f"HPA {hpa['metadata']['name']}: no CPU utilisation target")
        if not 2 <= spec.get("minReplicas", 1) <= spec["maxReplicas"]:
            out.append(f"HPA {hpa['metadata']['name']}: needs 2 <= minReplicas <= maxReplicas")
    for pdb in _of("PodDisruptionBudget", docs):
        sel = pdb["spec"]["selector"]["matchLabels"].items()
        if not any(sel <= d["spec"]["template"]["metadata"]["labels"].items()
                   for d in deployments.values()):
            out.append(f"PDB {pdb['metadata']['name']} selects no pods here")
    for kust in _of("Kustomization", docs):
        listed = set(kust["resources"])
        files = {k.split("#")[0] for k in docs if not k.startswith("kustomization.yaml")}
        if listed != files:
            out.append(f"kustomization: lists {sorted(listed - files)}, misses "
                       f"{sorted(files - listed)}")
    return out


def test_the_manifests_are_there():
    kinds = sorted(d["kind"] for d in DOCS.values())
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Kustomization"} <= set(kinds)


@pytest.mark.parametrize("name", sorted(DOCS))
def test_each_manifest_matches_the_schema(name):
    assert schema_problems(DOCS[name]) == []


@pytest.mark.parametrize("name", sorted(k for k, d in DOCS.items() if d["kind"] == "Deployment"))
def test_each_deployment_probes_sizes_and_configures_an_rtml_service(name):
    assert deployment_problems(DOCS[name]) == []


def test_services_autoscalers_and_budgets_point_at_the_deployments():
    assert wiring_problems(DOCS) == []


def test_health_probes_use_paths_the_api_keys_leave_open():
    for dep in _of("Deployment"):
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe in c:
                    assert c[probe]["httpGet"]["path"] in HEALTH_PATHS


def test_no_literal_value_in_the_manifests_looks_like_a_secret():
    text = "\n".join(p.read_text() for p in K8S.rglob("*.yaml"))
    assert not re.search(r"(?i)kind:\s*Secret\b", text)  # created by hand, never committed


# -- each check fails on a broken copy ------------------------------------------------------

def _deployment() -> dict:
    return copy.deepcopy(_of("Deployment")[0])


def _container(dep: dict) -> dict:
    return dep["spec"]["template"]["spec"]["containers"][0]


def _env(dep: dict, name: str) -> dict:
    return next(e for e in _container(dep)["env"] if e["name"] == name)


def _literal(dep: dict, name: str) -> None:
    """The variable's value written into the manifest instead of read from the Secret."""
    entry = _env(dep, name)
    entry.pop("valueFrom")
    entry["value"] = "in-the-manifest"


BREAKS = {
    "a misspelt field": (lambda d: _container(d).update(readinesProbe={}), "unknown field"),
    "replicas as text": (lambda d: d["spec"].update(replicas="two"), "expected integer"),
    "a probe port 0": (lambda d: _container(d)["livenessProbe"]["httpGet"].update(port=0),
                       "below 1"),
    "a bad quantity": (lambda d: _container(d)["resources"]["limits"].update(cpu="two"),
                       "matches none of anyOf"),
    "no image": (lambda d: _container(d).pop("image"), "missing required 'image'"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_the_schema_check_fails_a_broken_copy(case):
    dep = _deployment()
    BREAKS[case][0](dep)
    assert any(BREAKS[case][1] in e for e in schema_problems(dep)), schema_problems(dep)


SEMANTIC_BREAKS = {
    "readiness on /livez": (
        lambda d: _container(d)["readinessProbe"]["httpGet"].update(path="/livez"),
        "readinessProbe is not an HTTP GET of /readyz"),
    "a probe on an undeclared port": (
        lambda d: _container(d)["livenessProbe"]["httpGet"].update(port="admin"),
        "not a declared port"),
    "no cpu request": (lambda d: _container(d)["resources"]["requests"].pop("cpu"),
                       "requests and limits are all needed"),
    "more workers than CPUs": (lambda d: _env(d, "RTML_SERVE_WORKERS").update(value="8"),
                               "8 workers"),
    "a literal API key": (lambda d: _literal(d, "RTML_API_KEYS"),
                          "RTML_API_KEYS must come from a Secret"),
    "a misspelt setting": (lambda d: _env(d, "RTML_REDIS_ADDRESS").update(
        name="RTML_REDIS_ADRESS"), "RTML_REDIS_ADRESS is not an rtml setting"),
    "a flat scenario knob": (lambda d: _container(d)["env"].append(
        {"name": "RTML_MAX_INFLIGHT", "value": "4"}), "RTML_MAX_INFLIGHT is not an rtml setting"),
    "a selector that selects nothing": (
        lambda d: d["spec"]["selector"]["matchLabels"].update(tier="x"), "does not select"),
}


@pytest.mark.parametrize("case", sorted(SEMANTIC_BREAKS))
def test_the_deployment_checks_fail_a_broken_copy(case):
    dep = _deployment()
    SEMANTIC_BREAKS[case][0](dep)
    assert any(SEMANTIC_BREAKS[case][1] in p for p in deployment_problems(dep)), (
        deployment_problems(dep))


def test_the_wiring_checks_fail_broken_copies():
    docs = copy.deepcopy(DOCS)
    _of("HorizontalPodAutoscaler", docs)[0]["spec"]["scaleTargetRef"]["name"] = "other"
    _of("Service", docs)[0]["spec"]["ports"][0]["targetPort"] = "metrics"
    _of("Kustomization", docs)[0]["resources"].pop()
    _of("HorizontalPodAutoscaler", docs)[0]["spec"]["metrics"][0]["resource"]["name"] = "memory"
    found = "\n".join(wiring_problems(docs))
    for want in ("scales no Deployment", "targetPort 'metrics'", "kustomization: lists",
                 "no CPU utilisation target"):
        assert want in found, found
