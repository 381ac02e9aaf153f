"""fraud_model_v2 quality on demo-sized data, for the train/serve-skew fix (README).

    python -m benchmarks.model_v2 train OUT.json      # data, features, feast apply, 3 seeds
    python -m benchmarks.model_v2 rescore DIR OUT.json  # other boosters on this tree's features

`train` generates the demo's data (90 days, 5,000 customers, 10,000 terminals, seed 0), builds the
features, registers them and trains `fraud_model_v2` as the demo does (last 14 training days, 7
test days) for seeds 0, 1, 2, writing the metrics. `rescore` scores the boosters saved under a
BentoML model folder (`DIR/models/fraud_model/*`) on this tree's held-out week: run it where the
features are what serving reads (after the fix) with DIR the model store of a run before it, and
it tells what the old models would have scored on the features they are served.
Run from the repository root with the repo's venv; uses `RTML_REDIS_ADDRESS` only for apply.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _run(*cmd: str) -> None:
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(" ".join(cmd[:3]), f"{time.perf_counter() - t:.0f}s", flush=True)


def train_v2(out: Path) -> None:
    """Demo-sized data and three seeds of fraud_model_v2."""
    from rtml.settings import Settings
    from training.fraud.train import train

    bin_ = Path(sys.executable).parent
    _run(str(bin_ / "rtml"), "data", "generate", "--days", "90", "--customers", "5000",
         "--terminals", "10000", "--seed", "0")
    _run(str(bin_ / "rtml"), "features", "build")
    _run(str(bin_ / "feast"), "apply")
    t = time.perf_counter()
    m = train(Settings(scenario="fraud"), service_name="fraud_model_v2", train_days=14, test_days=7,
              seeds=[0, 1, 2])
    m["seconds"] = time.perf_counter() - t
    m["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                 text=True).stdout.strip()
    out.write_text(json.dumps(m, indent=2, default=str))


def rescore(models: Path, out: Path) -> None:
    """Average precision of other boosters on this tree's held-out week."""
    import xgboost as xgb
    from sklearn.metrics import average_precision_score, roc_auc_score

    from rtml.settings import Settings
    from training.fraud.train import training_frame

    s = Settings(scenario="fraud")
    days = int(pd.read_parquet(s.raw_dir / "transactions.parquet", columns=["day"])["day"].max())
    frame = training_frame(s, "fraud_model_v2", first_day=days + 1 - 7)
    result: dict = {"rows": len(frame), "fraud": int(frame["is_fraud"].sum()), "models": []}
    for d in sorted((models / "models" / "fraud_model").iterdir()):
        if d.name == "latest":
            continue
        booster = xgb.Booster()
        booster.load_model(str(d / "saved_model.ubj"))
        p = booster.inplace_predict(frame[booster.feature_names].to_numpy(dtype=np.float32))
        result["models"].append({"tag": d.name,
                                 "ap": average_precision_score(frame["is_fraud"], p),
                                 "roc_auc": roc_auc_score(frame["is_fraud"], p)})
        print(result["models"][-1], flush=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("BENTOML_HOME", str(Path.cwd() / ".bentoml-model-v2"))
    if sys.argv[1] == "train":
        train_v2(Path(sys.argv[2]))
    else:
        rescore(Path(sys.argv[2]), Path(sys.argv[3]))
