"""Which online store is this? State kept outside Redis is keyed by the store it describes.

Two pieces of state describe what an online store holds but live elsewhere: the stream flow's
Bytewax recovery files ("these events are in the windows I pushed") and Feast's registry ("views
are materialized up to T"). Pointed at another Redis — a new machine, a flushed or replaced
server — both would be wrong: the flow would resume from positions the new store never saw, and
`materialize-incremental` would load nothing before T. So each online store carries an identity
(`rtml:store:id`, a random id set once) and the end of its last rtml materialization
(`rtml:store:materialized_until`): the recovery directory is chosen by the identity, and
`rtml materialize` starts from the store's own watermark, not the registry's.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

STORE_ID_KEY = "rtml:store:id"
MATERIALIZED_KEY = "rtml:store:materialized_until"


def store_id(client: Any) -> str:
    """The online store's identity, created on first use (SET NX: one winner under races)."""
    client.set(STORE_ID_KEY, uuid.uuid4().hex[:16], nx=True)
    raw = client.get(STORE_ID_KEY)
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def recovery_dir(state_dir: Path, client: Any, *, flow: str = "fraud", say: Any = print) -> Path:
    """`<state>/recovery/<flow>/<store id>`, initialised for one worker partition when new.

    A new directory means the flow starts from the streams' beginning (as for a first run)
    instead of resuming positions that belong to another store; one line says so. Each
    scenario's flow has its own: Bytewax resumes a dataflow from its own snapshots only.
    """
    sid = store_id(client)
    path = Path(state_dir) / "recovery" / flow / sid
    if not path.exists():
        path.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(path), "1"], check=True)
        say(f"stream: new recovery store {path} for online store {sid}")
    return path


def materialize_window(client: Any, *, now: datetime, max_ttl: timedelta
                       ) -> tuple[datetime, str]:
    """`(start, why)` of the next load into this store: its own watermark, or a full load."""
    raw = client.get(MATERIALIZED_KEY)
    if raw is None:
        return now - max_ttl, (f"online store {store_id(client)} has no rtml load recorded: "
                               f"loading the last {max_ttl} (every value still within a TTL)")
    until = datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else raw)
    return until, f"incremental from {until.isoformat()}"


def record_materialized(client: Any, until: datetime) -> None:
    """Remember, in the store itself, how far it has been loaded."""
    client.set(MATERIALIZED_KEY, until.isoformat())
