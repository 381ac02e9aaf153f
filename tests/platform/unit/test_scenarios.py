"""The scenario registry and the CLI's dispatch through it: names in, the scenario's parts out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rtml.cli.scenarios as table
from rtml.cli import app
from rtml.scenarios import Registry, Scenario, UnknownScenarioError, resolve

CALLS: list[dict] = []


def fake_trainer(settings, *, service_name, seeds):
    """A trainer a test scenario registers: records its call, returns metrics."""
    CALLS.append({"service_name": service_name, "seeds": seeds})
    return {"bentoml_tag": "toy_model:abc", "device": "cpu", "ap": 0.5}


def fake_summary(metrics):
    """The test scenario's summary lines."""
    return [f"  toy ap {metrics['ap']:.2f}"]


def make_counter():
    """Called through `resolve("...:make_counter()")`."""
    return {"made": True}


TOY = Scenario(name="toy", summary="a test scenario", feature_services=("toy_v1", "toy_v2"),
               service="tests.toy.service:ToyService",
               trainer="tests.platform.unit.test_scenarios:fake_trainer",
               train_summary="tests.platform.unit.test_scenarios:fake_summary")


def test_resolve_imports_walks_and_calls_what_a_dotted_path_names():
    assert resolve("json:dumps") is json.dumps
    assert resolve("json:JSONDecoder.decode") is json.JSONDecoder.decode
    assert resolve("tests.platform.unit.test_scenarios:make_counter()") == {"made": True}
    with pytest.raises(ValueError, match="'json:nothing': module 'json' has no 'nothing'"):
        resolve("json:nothing")
    for bad in ("json", ":dumps", "json:"):
        with pytest.raises(ValueError, match="expected 'package.module:attribute'"):
            resolve(bad)


def test_registry_names_the_known_scenarios_when_asked_for_another():
    reg = Registry([table.FRAUD, TOY])
    assert reg.get("toy") is TOY and reg.names == ["fraud", "toy"] and "toy" in reg
    with pytest.raises(UnknownScenarioError) as err:
        reg.get("recs")
    assert str(err.value) == "unknown scenario 'recs'; known: fraud, toy"
    with pytest.raises(ValueError, match="'toy' registered twice"):
        Registry([TOY, TOY])
    with pytest.raises(UnknownScenarioError, match="'toy' has no monitor"):
        TOY.load("monitor")
    assert TOY.default_feature_service == "toy_v1"


def test_every_part_of_every_registered_scenario_resolves():
    """A typo in the table fails here, not in the middle of a demo."""
    parts = ("service", "trainer", "train_summary", "flow", "monitor", "generator", "demo",
             "bench_requests")
    for sc in table.REGISTRY:
        for part in parts:
            path = getattr(sc, part)
            if path is None:
                continue
            obj = resolve(path.removesuffix("()"))  # the flow is built by bytewax.run, not here
            assert obj is not None, (sc.name, part)
            if part in ("trainer", "train_summary", "flow", "demo", "generator",
                        "bench_requests"):
                assert callable(obj), (sc.name, part, path)
    spec = table.FRAUD.load("monitor")
    assert spec.name == "fraud" and "transaction_id" in spec.log_columns


@pytest.mark.parametrize("argv", [["serve", "nope"], ["train", "nope"], ["demo", "nope"],
                                  ["monitor", "run", "--model", "nope"],
                                  ["bench", "--scenario", "nope"],
                                  ["bench", "side-by-side", "--scenario", "nope"],
                                  ["bench", "saturate", "--scenario", "nope"],
                                  ["stream", "run", "--scenario", "nope"]])
def test_an_unknown_scenario_is_one_line_naming_the_known_ones_and_exit_2(argv):
    out = CliRunner().invoke(app, argv)
    assert out.exit_code == 2, out.output
    assert out.output.strip() == "rtml: unknown scenario 'nope'; known: fraud, recs, sensors"


def test_serve_execs_bentoml_on_the_registered_service(monkeypatch):
    execs = []
    monkeypatch.setattr(table, "REGISTRY", Registry([table.FRAUD, TOY]))
    monkeypatch.setattr("rtml.cli.serve.need_redis", lambda s: None)
    monkeypatch.setattr("rtml.cli.serve.os.chdir", lambda p: None)
    monkeypatch.setattr("rtml.cli.serve.os.execv", lambda exe, cmd: execs.append(cmd))
    for name in ("fraud", "toy"):
        assert CliRunner().invoke(app, ["serve", name, "--port", "3100"]).exit_code == 0
    # The bentoml beside this interpreter, so an unactivated `.venv/bin/rtml serve` finds it.
    bentoml = str(Path(sys.executable).parent / "bentoml")
    assert execs == [[bentoml, "serve", "bentos.fraud.service:FraudService", "--port", "3100"],
                     [bentoml, "serve", "tests.toy.service:ToyService", "--port", "3100"]]


def test_train_runs_the_registered_trainer_with_its_default_service(monkeypatch):
    monkeypatch.setattr(table, "REGISTRY", Registry([table.FRAUD, TOY]))
    CALLS.clear()
    out = CliRunner().invoke(app, ["train", "toy", "--seeds", "3,4"])
    assert out.exit_code == 0, out.output
    out2 = CliRunner().invoke(app, ["train", "toy", "--service", "toy_v2"])
    assert out2.exit_code == 0, out2.output
    assert CALLS == [{"service_name": "toy_v1", "seeds": [3, 4]},
                     {"service_name": "toy_v2", "seeds": None}]
    assert out.output.splitlines()[0].startswith("trained toy_model:abc in ")
    assert out.output.splitlines()[1:] == ["  toy ap 0.50"]


def test_a_scenario_without_a_part_is_refused_by_the_command_that_needs_it(monkeypatch):
    monkeypatch.setattr(table, "REGISTRY", Registry([table.FRAUD, TOY]))
    out = CliRunner().invoke(app, ["monitor", "run", "--model", "toy"])
    assert out.exit_code == 2
    assert out.output.strip() == "rtml: scenario 'toy' has no monitor; with one: fraud"
