"""The sensors scenario's monitor: its own sections over its streams (no prediction log).

`rtml monitor run --model sensors` runs `monitoring.sensors.checks.sections` through the kit's
`run_sections`, which writes the same files and dashboard panels as every other scenario's run.
"""

from __future__ import annotations

from monitoring.sensors.checks import FEATURE_SERVICE, sections
from rtml.monitor.custom import SectionsMonitor

MONITOR = SectionsMonitor(name="sensors", sections=sections, unit="readings",
                          feature_service=FEATURE_SERVICE)
