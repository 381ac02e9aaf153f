"""*stock*: Feast's own feature server (`feast serve`) over HTTP, then the model.

    python -m benchmarks.stock_server --port 3102 --feast-url http://127.0.0.1:3103

How a team wires the parts off the shelf: a thin model service receives /score, asks
`feast serve` for the model's FeatureService (`POST /get-online-features`, the amount passed as
request data for the on-demand view), and scores in-process with the fraud service's own model
code (`benchmarks.model`: same backend choice, TreeSHAP on one thread). The model call is
in-process, not a third server, so the stack pays one extra HTTP hop (to Feast), not two: the
most favourable stock set-up, and the hop every deployment of it has. Entities Feast does not
know come back as nulls and get the service's declared no-history value (0.0), as in rtml.
`feast serve` computes the on-demand view in the mode its registry holds (`pandas` as declared in
feature_repo/, or the harness's `python` twin: see `benchmarks.stock_odfv`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import aiohttp

from benchmarks.httpapp import make_app, serve
from benchmarks.model import answer_timed, load_model
from bentos.fraud.model import FraudModel


class StockScorer:
    """Feast feature server call + model."""

    def __init__(self, *, feast_url: str, model: FraudModel) -> None:
        self.url = f"{feast_url}/get-online-features"
        self.model = model
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """A keep-alive pool to the feature server (no TCP set-up per request)."""
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        """Close the pool."""
        if self.session is not None:
            await self.session.close()

    async def features(self, tx: dict[str, Any]) -> dict[str, float]:
        """One feature-service read from `feast serve`, as name -> value (None -> 0.0)."""
        assert self.session is not None
        body = {"feature_service": self.model.feature_service,
                "entities": {"customer_id": [tx["customer_id"]],
                             "terminal_id": [tx["terminal_id"]], "amount": [tx["amount"]]}}
        async with self.session.post(self.url, json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"feast serve answered {resp.status}: {await resp.text()}")
            data = await resp.json()
        names = data["metadata"]["feature_names"]
        return {n: float(r["values"][0]) if r["values"][0] is not None else 0.0
                for n, r in zip(names, data["results"], strict=True)}

    async def __call__(self, tx: dict[str, Any], timings: dict[str, float],
                       notes: dict[str, str]) -> dict[str, Any]:
        t0 = time.perf_counter()
        values = await self.features(tx)
        return answer_timed(self.model, tx["transaction_id"], values, t0=t0, timings=timings,
                            notes=notes)


def main() -> None:
    """Serve /score through `feast serve` at --feast-url."""
    from rtml.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--feast-url", required=True)
    args = p.parse_args()
    scorer = StockScorer(feast_url=args.feast_url, model=load_model(Settings(scenario="fraud")))
    serve(make_app(scorer, startup=scorer.open, cleanup=scorer.close), host=args.host,
          port=args.port)


if __name__ == "__main__":
    main()
