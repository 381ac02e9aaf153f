"""The scenario registry: a scenario is a name and dotted paths to its parts, resolved on use.

The kit may not import a scenario (an import-linter contract), and `rtml --help` should not pay
for importing XGBoost, Feast and BentoML: so a scenario names its parts as strings
(`"bentos.fraud.service:FraudService"`) and the caller resolves the one it needs. The table of
scenarios lives in the top layer (`rtml.cli.scenarios`), the only place that names them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def resolve(path: str) -> Any:
    """The object at `"package.module:attr"` (`attr.sub` walks attributes; `attr()` calls it).

    The same syntax as `python -m bytewax.run` and `bentoml serve` take, so one string serves
    both a subprocess command line and an in-process import.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{path!r}: expected 'package.module:attribute'")
    call = attr.endswith("()")
    obj: Any = importlib.import_module(module_name)
    for part in attr.removesuffix("()").split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{path!r}: module {module_name!r} has no {part!r}") from None
    return obj() if call else obj


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """What the CLI, the demo and the benchmarks need to run one scenario end to end.

    Every part is a dotted path (see `resolve`); `None` where the scenario has no such part
    (a scenario without a stream has no `flow`). Contracts of the callables:

    * `trainer(settings, *, service_name, seeds) -> metrics`, `train_summary(metrics) -> lines`;
    * `monitor`: a `rtml.monitor.run.MonitorSpec`;
    * `demo(settings, **options) -> exit status`;
    * `bench_requests(settings, n, *, seed, skew) -> request bodies`.
    """

    name: str
    summary: str
    feature_services: tuple[str, ...]  # the first is the default
    service: str  # BentoML service, as `bentoml serve` takes it
    trainer: str
    train_summary: str | None = None
    flow: str | None = None  # Bytewax flow, as `python -m bytewax.run` takes it
    monitor: str | None = None
    generator: str | None = None
    demo: str | None = None
    bench_requests: str | None = None
    # `(features_dir) -> written paths`: empty, typed offline files for the views it has not
    # built. `feast materialize` reads every registered view's source, other scenarios' too.
    offline_sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.feature_services:
            raise ValueError(f"scenario {self.name!r}: needs at least one feature service")

    @property
    def default_feature_service(self) -> str:
        """The feature service training and serving use unless told otherwise."""
        return self.feature_services[0]

    def load(self, part: str) -> Any:
        """Resolve one part (`"trainer"`, `"monitor"`, ...); a clear error when it has none."""
        path = getattr(self, part)
        if path is None:
            raise UnknownScenarioError(f"scenario {self.name!r} has no {part}")
        return resolve(path)


class UnknownScenarioError(LookupError):
    """A scenario (or a part of one) that is not registered: the message names the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry:
    """Scenarios by name, in registration order."""

    def __init__(self, scenarios: Iterable[Scenario]) -> None:
        self._by_name: dict[str, Scenario] = {}
        for s in scenarios:
            if s.name in self._by_name:
                raise ValueError(f"scenario {s.name!r} registered twice")
            self._by_name[s.name] = s

    def get(self, name: str) -> Scenario:
        """The scenario called `name`, or an error naming every known one."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownScenarioError(
                f"unknown scenario {name!r}; known: {', '.join(self.names)}") from None

    @property
    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._by_name)

    def __iter__(self) -> Iterator[Scenario]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    def ensure_offline_sources(self, features_dir: Path) -> list[Path]:
        """Every scenario's missing offline sources, written empty (see `Scenario`)."""
        return [path for s in self for part in s.offline_sources
                for path in resolve(part)(features_dir)]
