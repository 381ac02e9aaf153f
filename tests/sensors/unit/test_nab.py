"""NAB scoring on hand-computed cases, the windowed-Gaussian baseline, files and windows.

The hand numbers: the scaled sigmoid 2 / (1 + e^(5p)) - 1 equals tanh(-5p / 2), so a detection
at relative position p in a window earns tanh(-2.5 p) / tanh(2.5) and a false positive d widths
past a window costs 0.11 tanh(2.5 d) (worked out on paper, then to 6 digits with a calculator).
"""

import json

import numpy as np
import pytest

from training.sensors import nab

N = 100
WINDOW = (40, 49)  # width 10; probation: floor(0.15 * 100) = 15 rows


def nab_score(rows, n=N, windows=(WINDOW,)):
    weights = nab.row_weights(n, list(windows))
    det = np.zeros(n, dtype=bool)
    det[list(rows)] = True
    return nab.score(weights, det)


def test_probation_is_15_percent_capped_at_750_rows():
    assert nab.probation_rows(100) == 15
    assert nab.probation_rows(4999) == 749
    assert nab.probation_rows(22695) == 750


def test_detection_at_the_first_row_of_the_window_is_worth_exactly_a_true_positive():
    s = nab_score([40])
    assert s.raw == pytest.approx(1.0) and (s.null, s.perfect) == (-1.0, 1.0)
    assert s.normalised == pytest.approx(100.0) and s.windows_detected == 1


def test_later_detections_earn_less_and_only_the_earliest_counts():
    assert nab_score([49]).raw == pytest.approx(0.248242, abs=1e-6)  # p = -0.1
    both = nab_score([45, 41])
    assert both.raw == pytest.approx(0.991295, abs=1e-6)  # the earliest: p = -0.9
    assert both.false_positives == 0


def test_false_positives_cost_by_distance_past_the_window():
    assert nab_score([50]).raw == pytest.approx(-1 - 0.029793, abs=1e-6)  # d = 1/9
    assert nab_score([59]).raw == pytest.approx(-1 - 0.109153, abs=1e-6)  # d = 10/9
    assert nab_score([76]).raw == pytest.approx(-1.11, abs=1e-9)  # d = 3: the full 0.11
    assert nab_score([20]).raw == pytest.approx(-1.11, abs=1e-9)  # before any window


def test_probation_rows_are_not_scored_and_a_missed_window_costs_one():
    assert nab_score([3, 14]).raw == pytest.approx(-1.0)
    s = nab_score([])
    assert (s.raw, s.normalised, s.windows_detected, s.false_positives) == (-1.0, 0.0, 0, 0)


def test_a_mixed_file_and_its_normalised_score():
    s = nab_score([10, 20, 41, 45, 59])
    assert s.raw == pytest.approx(0.772143, abs=1e-6)
    assert s.normalised == pytest.approx(88.607126, abs=1e-5)
    assert (s.windows, s.windows_detected, s.false_positives) == (1, 1, 2)


def test_two_files_are_summed_before_normalising():
    a, b = nab_score([40]), nab_score([])
    assert (a + b).normalised == pytest.approx(100 * (1 - 1 + 2) / 4)


def test_a_window_inside_probation_is_not_scored():
    s = nab_score([5], windows=[(2, 6), WINDOW])
    assert s.windows == 1 and s.raw == pytest.approx(-1.0)


def test_windows_from_labels_are_10_percent_of_the_file_over_the_labels_centred():
    ts = np.arange(1000.0)
    assert nab.windows_from_labels(ts, [300.0, 700.0]) == [(275, 325), (675, 725)]


def test_windowed_gaussian_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    got = nab.windowed_gaussian(x, window=20, step=5)
    from math import erf, sqrt

    data, pending = [], []
    for i, v in enumerate(x):
        if i >= 2:  # (the second value sees a one-value window: std 0)
            mean, std = np.mean(data), np.std(data)
            z = abs(v - mean) / std
            assert got[i] == pytest.approx(0.5 + 0.5 * erf(z / sqrt(2)), rel=1e-9)
        if len(data) < 20:
            data.append(v)
        else:
            pending.append(v)
            if len(pending) == 5:
                data, pending = data[5:] + pending, []
    assert got[0] == 0.0


def test_best_threshold_finds_the_perfect_one():
    weights = nab.row_weights(N, [WINDOW])
    scores = np.zeros(N)
    scores[40] = 0.9
    scores[70] = 0.5
    thr, s = nab.best_threshold(weights, scores)
    assert 0.5 < thr <= 0.9 and s.normalised == pytest.approx(100.0)


def test_alerts_are_the_first_row_of_each_incident():
    flags = np.zeros(100, dtype=bool)
    flags[[3, 4, 5, 20, 50, 90]] = True  # gaps 1, 1, 15, 30, 40
    assert np.flatnonzero(nab.alerts(flags, release_rows=30)).tolist() == [3, 90]
    assert np.flatnonzero(nab.alerts(flags, release_rows=10)).tolist() == [3, 20, 50, 90]


def test_files_and_windows_are_matched_by_name(tmp_path):
    csv = tmp_path / "pump.csv"
    csv.write_text("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,2\n"
                   "2024-01-01 00:10:00,3\n")
    windows = tmp_path / "w.json"
    windows.write_text(json.dumps({"realKnownCause/pump.csv": [
        ["2024-01-01 00:04:00.000000", "2024-01-01 00:10:00.000000"]], "other/x.csv": []}))
    ts, values = nab.read_csv(csv)
    assert values.tolist() == [1.0, 2.0, 3.0] and ts[1] - ts[0] == 300.0
    assert nab.to_rows(ts, nab.windows_for(csv, windows)) == [(1, 2)]
    with pytest.raises(KeyError, match="nope.csv: not in"):
        nab.windows_for(tmp_path / "nope.csv", windows)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2024-01-01 00:00:00,hot\n")
    with pytest.raises(ValueError, match="row 2: value is not a number"):
        nab.read_csv(bad)
