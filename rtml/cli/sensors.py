"""`rtml sensors`: the sensors scenario's own commands (NAB scoring of any NAB-format file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Sensor anomaly detection.")


@app.command("nab-score")
def nab_score(
    files: Annotated[list[Path], typer.Argument(help="NAB-format CSV file(s): timestamp,value")],
    windows: Annotated[Path, typer.Option(
        help="NAB's combined_windows.json format; each CSV is matched by file name")],
    model: Annotated[Path | None, typer.Option(
        help="sensors model file (default: the newest under artifacts/sensors/)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    real_time: Annotated[bool, typer.Option(
        help="replay at the file's own timestamps (default: one row per second)")] = False,
) -> None:
    """Run the detector over NAB files at its fixed threshold; print the NAB standard score.

    The threshold is the model's, fixed on simulated data; the per-file-optimised score (the
    best threshold for this file, unknowable in advance) is printed beside it, labelled, with
    the windowed-Gaussian baseline's.
    """
    from pipelines.sensors.detect import load_detector
    from training.sensors import nab

    for path in [*files, windows]:
        if not path.is_file():
            typer.echo(f"rtml: {path}: no such file", err=True)
            raise typer.Exit(2)
    try:
        detector = load_detector(model)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"rtml: {exc}", err=True)
        raise typer.Exit(2) from None
    results = []
    for path in files:
        try:
            results.append(nab.evaluate_file(path, windows, detector, real_time=real_time))
        except (KeyError, ValueError) as exc:
            typer.echo(f"rtml: {str(exc).strip(chr(34) + chr(39))}", err=True)
            raise typer.Exit(2) from None
    total = {k: sum((r["_parts"][k] for r in results[1:]), results[0]["_parts"][k])
             for k in ("fixed", "optimised", "gaussian")}
    out = {
        "score": total["fixed"].normalised, "windows": total["fixed"].windows,
        "windows_detected": total["fixed"].windows_detected,
        "false_positives": total["fixed"].false_positives,
        "threshold": detector.params.threshold, "detector": detector.params.kind,
        "model": str(model) if model else "newest under artifacts/sensors/",
        "profile": "standard (A_TP 1, A_FP 0.11, A_FN 1)",
        "per_file_optimised_score": total["optimised"].normalised,
        "windowed_gaussian_per_file_optimised_score": total["gaussian"].normalised,
        "files": [{k: v for k, v in r.items() if k != "_parts"} for r in results],
    }
    if as_json:
        typer.echo(json.dumps(out, indent=1))
        return
    for r in results:
        typer.echo(f"{Path(r['file']).name}: NAB standard score {r['score']:.1f} at the fixed "
                   f"threshold {r['threshold']:g} ({r['detector']}); windows detected "
                   f"{r['windows_detected']}/{r['windows']}; false positives "
                   f"{r['false_positives']}")
        typer.echo(f"  per-file-optimised (threshold chosen on this file): "
                   f"{r['per_file_optimised']['score']:.1f}; windowed Gaussian, per-file-"
                   f"optimised: {r['windowed_gaussian_per_file_optimised']['score']:.1f}")
    if len(results) > 1:
        typer.echo(f"all files: NAB standard score {out['score']:.1f} (fixed threshold); "
                   f"windows detected {out['windows_detected']}/{out['windows']}; false "
                   f"positives {out['false_positives']}; per-file-optimised "
                   f"{out['per_file_optimised_score']:.1f}; windowed Gaussian per-file-"
                   f"optimised {out['windowed_gaussian_per_file_optimised_score']:.1f}")
