"""Vigil's statistics engine against Evidently, NannyML and plain scipy on the same data
(issue 4, "Speed"). Run by hand in its own environment, never in the test suite:

    python3 -m venv /tmp/bench-compare-venv
    /tmp/bench-compare-venv/bin/pip install -r bench/compare-requirements.txt
    /tmp/bench-compare-venv/bin/python bench/drift_compare.py all --out /tmp/drift-bench

``all`` runs, one after the other and each in a fresh process (never two at once), the
engines ``vigil`` (columnar input), ``vigil-stored`` (the list-of-dicts input stored events
have), ``scipy``, ``nannyml`` and ``evidently``, then ``agreement``, then prints the ``table``.
Each can be run alone: ``drift_compare.py run ENGINE --out DIR``; ``--rows`` makes the data
smaller for a quick try. ``run breakdown`` splits the profile's CPU time by operation, for the
columnar input and for the stored (list-of-dicts) shape. Every step prints its wall and CPU
time beside ``os.getloadavg()`` (the machine is shared) and writes ``DIR/ENGINE.json``.

Vigil is the real pipeline's pure parts (``monitoring.profile_data``, ``monitoring.metrics``,
``monitoring.thresholds``; no Django): profile = ``bins_from_reference`` + the reference SDs +
``profile_of`` of the reference and of the current sample; compare = ``metrics.feature_drift``;
the flags are the band logic of ``monitoring.evaluation._result`` (see ``vigil_bands``). The
columnar engine replaces only the two per-row Python loops of the stored shape
(``profile_data.numeric_array`` and the code lookup in ``profile_data._Columns``) by their
numpy equivalents and then calls the same ``_profile_slice``; ``vigil-stored`` checks that
both give identical bins and profiles.
"""

from __future__ import annotations

import os

# No telemetry from Evidently (iterative-telemetry) or NannyML (segment): set before import.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("ITERATIVE_DO_NOT_TRACK", "1")
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import drift_data  # noqa: E402
from bench.drift_data import CATEGORICAL, DRIFTED, FEATURES, NUMERIC  # noqa: E402

ENGINES = ("vigil", "vigil-stored", "scipy", "nannyml", "evidently")
#: Each engine's process is stopped after this many seconds (Evidently took ~100 s here).
TIMEOUT_S = {"evidently": 1800, "agreement": 1200}
DEFAULT_TIMEOUT_S = 900


# --- timing ----------------------------------------------------------------------------------


class Timer:
    """Wall and CPU seconds of each step, with the 1-minute load average when it started."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}

    def __call__(self, label: str, fn: Callable[[], Any]) -> Any:
        load = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        self.steps[label] = {"wall_s": wall, "cpu_s": cpu, "load_1m": load}
        print(f"  {label:<34} {wall:9.3f} s wall {cpu:9.3f} s CPU   load {load:.2f}", flush=True)
        return out


def _data(rows: int) -> tuple[drift_data.Sample, drift_data.Sample]:
    t = time.perf_counter()
    ref, cur = drift_data.make(rows)
    print(f"  data: 2 × {rows:,} rows generated in {time.perf_counter() - t:.1f} s (not timed)")
    return ref, cur


# --- Vigil -----------------------------------------------------------------------------------


def vigil_bands(measured: Sequence[Any], n: int, *, tier: str = "", in_launch: bool = False):
    """metric → band, exactly as ``monitoring.evaluation._result`` decides it (default policy:
    no overrides, no min_samples overrides)."""
    from monitoring.thresholds import METRICS, band_of, thresholds_for

    out = {}
    for m in measured:
        spec = METRICS[m.name]
        bands = thresholds_for(spec, overrides={}, tier=tier, in_launch=in_launch)
        if n < spec.min_n or m.deviation is None or not math.isfinite(m.estimate.value):
            out[m.metric] = "insufficient"
            continue
        dev, dev_low, _ = m.deviation
        band = band_of(dev, bands)
        significant = m.p_value < 0.05 if m.p_value is not None else dev_low > 0
        out[m.metric] = "green" if band != "green" and not significant else band
    return out


def _vigil_result(measured: Sequence[Any], n: int) -> dict[str, Any]:
    bands = vigil_bands(measured, n)
    tight = vigil_bands(measured, n, tier="high", in_launch=True)
    features: dict[str, Any] = {}
    for m in measured:
        _, _, name = m.metric.partition(":")
        entry = features.setdefault(name, {"values": {}, "bands": {}, "p": {}, "bands_tight": {}})
        entry["values"][m.name] = m.estimate.value
        entry["bands"][m.name] = bands[m.metric]
        entry["bands_tight"][m.name] = tight[m.metric]
        entry["p"][m.name] = m.p_value
    for entry in features.values():
        entry["flag"] = any(b not in ("green", "insufficient") for b in entry["bands"].values())
        entry["flag_tight"] = any(
            b not in ("green", "insufficient") for b in entry["bands_tight"].values()
        )
    return features


def _columnar_bins(spec: Sequence[Mapping[str, Any]], columns: Mapping[str, np.ndarray]):
    """``profile_data.bins_from_reference`` on numpy columns: the same ``quantile_edges`` call,
    without the per-value ``numeric_array`` loop (the values here are all floats)."""
    from monitoring.profile_data import NUMERIC_BINS, FeatureBins
    from monitoring.stats.binning import quantile_edges

    out = []
    for f in spec:
        if f["dtype"] == "numeric":
            v = np.asarray(columns[f["name"]], dtype=float)
            edges = quantile_edges(v[np.isfinite(v)], n_bins=NUMERIC_BINS)
            out.append(FeatureBins(f["name"], "numeric", edges=tuple(float(e) for e in edges)))
        else:
            out.append(FeatureBins(f["name"], f["dtype"], categories=tuple(f["categories"])))
    return out


def _ref_std(columns: Mapping[str, Any]) -> dict[str, float]:
    """As ``monitoring.reference.build_profile``: SD (ddof=1) of the finite values."""
    from monitoring.profile_data import numeric_array

    out = {}
    for name in NUMERIC:
        col = columns[name]
        v = col if isinstance(col, np.ndarray) else numeric_array(col)
        v = v[np.isfinite(v)]
        out[name] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return out


def _columnar_profile(sample: drift_data.Sample, bins: Sequence[Any]) -> dict[str, Any]:
    """``profile_data.profile_of(batch, bins, {"all": idx})["all"]`` from numpy columns: a
    ``_Columns`` filled with numpy (what its per-row loops compute for these values), then the
    real ``_profile_slice``."""
    from monitoring import profile_data as pd_
    from monitoring.profile_data import UNKNOWN, WRONG_TYPE

    cols = object.__new__(pd_._Columns)
    cols.bins, cols.codes, cols.values, cols.out_of_range = bins, {}, {}, {}
    for fb in bins:
        raw = sample.columns[fb.name]
        if fb.dtype == "numeric":
            values = np.asarray(raw, dtype=float)
            codes = np.searchsorted(np.asarray(fb.edges, dtype=float), values, side="right")
            codes = codes.astype(np.int64)
            finite = np.isfinite(values)
            codes[np.isnan(values)] = WRONG_TYPE
            oor = np.zeros(len(values), dtype=bool)
            if fb.min_value is not None:
                oor |= finite & (values < fb.min_value)
            if fb.max_value is not None:
                oor |= finite & (values > fb.max_value)
            cols.values[fb.name] = np.where(finite, values, 0.0)
            cols.out_of_range[fb.name] = oor
        else:
            cats = np.asarray(fb.categories)
            order = np.argsort(cats)
            pos = np.minimum(np.searchsorted(cats[order], raw), len(cats) - 1)
            codes = np.where(cats[order][pos] == raw, order[pos], UNKNOWN).astype(np.int64)
        cols.codes[fb.name] = codes
    batch = pd_.Batch(features=[], scores=sample.scores, labels=sample.labels, cohorts=[])
    return pd_._profile_slice(batch, cols, np.arange(len(sample)), np.array([]))


def _vigil_profile(sample: drift_data.Sample, bins: Sequence[Any]) -> dict[str, Any]:
    """The real ``profile_data.profile_of`` on the sample's columns (``Batch.columns``)."""
    from monitoring import profile_data as pd_

    batch = pd_.Batch(
        features=[], scores=sample.scores, labels=sample.labels, cohorts=[],
        columns=sample.columns,
    )  # fmt: skip
    return pd_.profile_of(batch, bins, {"all": np.arange(len(sample))})["all"]


def run_vigil(rows: int) -> dict[str, Any]:
    from monitoring import metrics
    from monitoring import profile_data as pd_

    ref, cur = _data(rows)
    spec = drift_data.spec()
    t = Timer()
    bins = t(
        "profile: bins_from_reference",
        lambda: pd_.bins_from_reference(spec, ref.columns),
    )
    std = t("profile: reference SDs", lambda: _ref_std(ref.columns))
    ref_p = t("profile: profile_of(reference)", lambda: _vigil_profile(ref, bins))
    cur_p = t("profile: profile_of(current)", lambda: _vigil_profile(cur, bins))
    measured = t("compare: feature_drift", lambda: metrics.feature_drift(cur_p, ref_p, bins, std))
    profile_s = sum(v["wall_s"] for k, v in t.steps.items() if k.startswith("profile"))
    return {
        "timings": t.steps,
        "profile_s": profile_s,
        "compare_s": t.steps["compare: feature_drift"]["wall_s"],
        "total_s": profile_s + t.steps["compare: feature_drift"]["wall_s"],
        "features": _vigil_result(measured, cur_p["n"]),
    }


def run_vigil_stored(rows: int) -> dict[str, Any]:
    """The real functions on the stored shape: ``Batch.features`` a list of dicts, and the
    reference columns built as ``monitoring.reference.build_profile`` builds them."""
    from monitoring import metrics, profile_data

    ref, cur = _data(rows)
    spec = drift_data.spec()
    t0 = time.perf_counter()
    ref_rows, cur_rows = drift_data.rows_of(ref), drift_data.rows_of(cur)
    print(f"  data: list-of-dicts built in {time.perf_counter() - t0:.1f} s (not timed)")
    t = Timer()
    columns = t(
        "profile: columns of the rows",
        lambda: {f["name"]: [row.get(f["name"]) for row in ref_rows] for f in spec},
    )
    bins = t(
        "profile: bins_from_reference", lambda: profile_data.bins_from_reference(spec, columns)
    )
    std = t("profile: reference SDs", lambda: _ref_std(columns))
    columns.clear()  # free the 20 column lists before profiling
    every = {"all": np.arange(rows)}
    ref_p = t(
        "profile: profile_of(reference)",
        lambda: profile_data.profile_of(
            profile_data.Batch(ref_rows, ref.scores, ref.labels, []), bins, every
        )["all"],
    )
    # As monitoring.profiles.read_day: the gate's problems say which rows hold a wrong-typed
    # input (none here), so the per-value boolean check is skipped for the current sample;
    # monitoring.reference builds its Batch without it, so the reference gets the check.
    cur_p = t(
        "profile: profile_of(current)",
        lambda: profile_data.profile_of(
            profile_data.Batch(
                cur_rows, cur.scores, cur.labels, [], wrong_type=np.zeros(rows, dtype=bool)
            ),
            bins,
            every,
        )["all"],
    )
    measured = t("compare: feature_drift", lambda: metrics.feature_drift(cur_p, ref_p, bins, std))
    profile_s = sum(v["wall_s"] for k, v in t.steps.items() if k.startswith("profile"))
    # The columnar engine's shortcut must give the same bins, SDs and profiles.
    same = (
        _columnar_bins(spec, ref.columns) == bins
        and _ref_std(ref.columns) == std
        and _columnar_profile(ref, bins) == ref_p
        and _columnar_profile(cur, bins) == cur_p
    )
    print(f"  columnar bins, SDs and profiles identical to the stored path's: {same}")
    return {
        "timings": t.steps,
        "profile_s": profile_s,
        "compare_s": t.steps["compare: feature_drift"]["wall_s"],
        "total_s": profile_s + t.steps["compare: feature_drift"]["wall_s"],
        "columnar_identical": same,
        "features": _vigil_result(measured, cur_p["n"]),
    }


# --- plain scipy -----------------------------------------------------------------------------


def _scipy_all(ref: drift_data.Sample, cur: drift_data.Sample) -> dict[str, Any]:
    from scipy import stats

    out: dict[str, Any] = {}
    for name in NUMERIC:
        r, c = ref.columns[name], cur.columns[name]
        ks = stats.ks_2samp(r, c)
        w = stats.wasserstein_distance(r, c)
        out[name] = {
            "values": {"ks": float(ks.statistic), "wasserstein": float(w)},
            "p": {"ks": float(ks.pvalue)},
        }
    for name in CATEGORICAL:
        cats, rc = np.unique(ref.columns[name], return_counts=True)
        cats_c, cc = np.unique(cur.columns[name], return_counts=True)
        table = np.zeros((2, len(set(cats) | set(cats_c))))
        index = {c: i for i, c in enumerate(sorted(set(cats) | set(cats_c)))}
        for c, k in zip(cats, rc, strict=True):
            table[0, index[c]] = k
        for c, k in zip(cats_c, cc, strict=True):
            table[1, index[c]] = k
        chi = stats.chi2_contingency(table, correction=False)
        out[name] = {
            "values": {"chi2": float(chi.statistic)},
            "p": {"chi2": float(chi.pvalue)},
        }
    for entry in out.values():
        entry["flag"] = any(p < 0.05 for p in entry["p"].values())
    return out


def run_scipy(rows: int) -> dict[str, Any]:
    import scipy.stats  # noqa: F401  (imported before the clock starts)

    ref, cur = _data(rows)
    t = Timer()
    features = t("ks_2samp + wasserstein + chi2", lambda: _scipy_all(ref, cur))
    total = t.steps["ks_2samp + wasserstein + chi2"]["wall_s"]
    return {"timings": t.steps, "total_s": total, "features": features}


# --- Evidently -------------------------------------------------------------------------------


def run_evidently(rows: int) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = _data(rows)
    ref_df, cur_df = drift_data.frame(ref), drift_data.frame(cur)
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    t = Timer()

    def run() -> Any:
        current = Dataset.from_pandas(cur_df, data_definition=definition)
        reference = Dataset.from_pandas(ref_df, data_definition=definition)
        return Report([DataDriftPreset()]).run(current, reference)

    snapshot = t("Report([DataDriftPreset()]).run", run)
    data = t("snapshot.dict()", snapshot.dict)
    features: dict[str, Any] = {}
    for metric in data["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            value = float(metric["value"])
            features[config["column"]] = {
                "method": config["method"],
                "threshold": config["threshold"],
                "values": {config["method"]: value},
                "flag": value >= config["threshold"],
            }
        elif config.get("type", "").endswith("DriftedColumnsCount"):
            drifted_count = metric["value"]
    return {
        "timings": t.steps,
        "total_s": t.steps["Report([DataDriftPreset()]).run"]["wall_s"]
        + t.steps["snapshot.dict()"]["wall_s"],
        "features": features,
        "drifted_columns": drifted_count,
    }


# --- NannyML ---------------------------------------------------------------------------------


def run_nannyml(rows: int) -> dict[str, Any]:
    import nannyml as nml

    ref, cur = _data(rows)
    ref_df, cur_df = drift_data.frame(ref), drift_data.frame(cur)
    t = Timer()
    calc = nml.UnivariateDriftCalculator(column_names=FEATURES, treat_as_categorical=CATEGORICAL)
    t("UnivariateDriftCalculator.fit", lambda: calc.fit(ref_df))
    result = t("UnivariateDriftCalculator.calculate", lambda: calc.calculate(cur_df))
    df = result.to_df()
    period = df[("chunk", "chunk", "period")]
    features: dict[str, Any] = {}
    cells = {"analysis": [0, 0], "reference": [0, 0]}  # unchanged features: [alerts, cells]
    for name in FEATURES:
        methods = sorted({m for f, m, _ in df.columns if f == name})
        entry: dict[str, Any] = {"methods": methods, "values": {}, "alerts": {}}
        for method in methods:
            alert = df[(name, method, "alert")].astype(bool)
            value = df[(name, method, "value")]
            entry["values"][method] = [float(v) for v in value[period == "analysis"]]
            entry["upper_threshold"] = float(df[(name, method, "upper_threshold")].iloc[0])
            entry["alerts"][method] = {
                p: int(alert[period == p].sum()) for p in ("analysis", "reference")
            }
            if name not in DRIFTED:
                for p in cells:
                    cells[p][0] += int(alert[period == p].sum())
                    cells[p][1] += int((period == p).sum())
        entry["chunks"] = int((period == "analysis").sum())
        entry["flag"] = any(a["analysis"] > 0 for a in entry["alerts"].values())
        features[name] = entry
    return {
        "timings": t.steps,
        "total_s": sum(v["wall_s"] for v in t.steps.values()),
        "features": features,
        "false_alerts": {p: {"alerts": a, "cells": n} for p, (a, n) in cells.items()},
        "chunker": type(calc.chunker).__name__,
    }


# --- agreement with scipy --------------------------------------------------------------------


def run_agreement(rows: int) -> dict[str, Any]:
    """Vigil's binned statistics against scipy's on the exact data, with the binning bounds."""
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    from monitoring import metrics
    from monitoring.stats import drift

    ref, cur = _data(rows)
    spec = drift_data.spec()
    bins = _columnar_bins(spec, ref.columns)
    std = _ref_std(ref.columns)
    ref_p, cur_p = _columnar_profile(ref, bins), _columnar_profile(cur, bins)
    measured = {m.metric: m for m in metrics.feature_drift(cur_p, ref_p, bins, std)}
    out: dict[str, Any] = {}
    for fb in bins:
        name = fb.name
        rf, cf = ref_p["features"][name], cur_p["features"][name]
        rcounts, ccounts = np.asarray(rf["counts"], float), np.asarray(cf["counts"], float)
        entry: dict[str, Any] = {}
        if fb.dtype == "numeric":
            r, c = ref.columns[name], cur.columns[name]
            ks_exact = float(stats.ks_2samp(r, c).statistic)
            ks_vigil = measured[f"ks:{name}"].estimate.value
            share = max((rcounts / rcounts.sum()).max(), (ccounts / ccounts.sum()).max())
            w_exact = float(stats.wasserstein_distance(r, c))
            w_vigil = measured[f"wasserstein:{name}"].estimate.value * std[name]
            # Triangle inequality: |W(binned) − W(exact)| ≤ W(ref, its binned) + W(cur, its binned)
            # where "binned" puts each bin's values at the bin's mean.
            bound = 0.0
            for x, f in ((r, rf), (c, cf)):
                k = np.asarray(f["counts"], float)
                means = np.divide(np.asarray(f["sums"]), k, out=np.zeros(k.size), where=k > 0)
                bound += float(stats.wasserstein_distance(x, means[k > 0], None, k[k > 0]))
            coarse_r, coarse_c = metrics._group(rcounts, 5), metrics._group(ccounts, 5)
            js_scipy = float(jensenshannon(coarse_r, coarse_c, base=2))
            entry.update(
                ks={
                    "vigil": ks_vigil,
                    "scipy": ks_exact,
                    "diff": ks_vigil - ks_exact,
                    "bound": float(share),
                },
                wasserstein={
                    "vigil": w_vigil,
                    "scipy": w_exact,
                    "diff": w_vigil - w_exact,
                    "bound": bound,
                    "ref_sd": std[name],
                    "evidently_norm_sd": float(np.std(r)),
                },
            )
            table_r, table_c = coarse_r, coarse_c
        else:
            js_scipy = float(jensenshannon(rcounts, ccounts, base=2))
            table_r, table_c = rcounts, ccounts
            chi = stats.chi2_contingency(np.vstack([rcounts, ccounts]), correction=False)
            gof = stats.chisquare(ccounts, rcounts / rcounts.sum() * ccounts.sum())
            v = measured[f"chi_square:{name}"]
            n_all = rcounts.sum() + ccounts.sum()
            entry["chi_square"] = {
                "vigil_V": v.estimate.value,
                "vigil_chi2": v.estimate.value**2 * n_all,
                "scipy_chi2": float(chi.statistic),
                "vigil_p": v.p_value,
                "scipy_p": float(chi.pvalue),
                "goodness_of_fit_chi2": float(gof.statistic),
                "goodness_of_fit_p": float(gof.pvalue),
            }
        js_vigil = measured[f"js_distance:{name}"].estimate.value
        entry["js"] = {
            "vigil": js_vigil,
            "scipy": js_scipy,
            "diff": js_vigil - js_scipy,
            "scipy_natural_log": float(jensenshannon(table_r, table_c)),
        }
        psi_direct = drift.psi(table_r, table_c).value
        entry["psi"] = {"vigil": measured[f"psi:{name}"].estimate.value, "check": psi_direct}
        out[name] = entry
    summary = {
        "ks_max_abs_diff": max(abs(e["ks"]["diff"]) for e in out.values() if "ks" in e),
        "ks_within_bound": all(
            -e["ks"]["bound"] <= e["ks"]["diff"] <= 1e-12 for e in out.values() if "ks" in e
        ),
        "w_max_abs_diff": max(
            abs(e["wasserstein"]["diff"]) for e in out.values() if "wasserstein" in e
        ),
        "w_max_rel_diff": max(
            abs(e["wasserstein"]["diff"]) / e["wasserstein"]["scipy"]
            for e in out.values()
            if "wasserstein" in e
        ),
        "w_max_abs_diff_in_ref_sd": max(
            abs(e["wasserstein"]["diff"]) / e["wasserstein"]["ref_sd"]
            for e in out.values()
            if "wasserstein" in e
        ),
        "w_within_bound": all(
            abs(e["wasserstein"]["diff"]) <= e["wasserstein"]["bound"] + 1e-12
            for e in out.values()
            if "wasserstein" in e
        ),
        "js_max_abs_diff": max(abs(e["js"]["diff"]) for e in out.values()),
        "chi2_max_rel_diff": max(
            abs(e["chi_square"]["vigil_chi2"] - e["chi_square"]["scipy_chi2"])
            / e["chi_square"]["scipy_chi2"]
            for e in out.values()
            if "chi_square" in e
        ),
    }
    for k, v in summary.items():
        print(f"  {k}: {v}")
    return {"features": out, "summary": summary}


# --- where the profile's time goes ---------------------------------------------------------


def run_breakdown(rows: int) -> dict[str, Any]:
    """CPU seconds per operation of the profile: the columnar path (reference and current),
    and the stored shape's extra steps on the current sample's list of dicts."""
    from contextlib import contextmanager
    from itertools import repeat

    from monitoring import profile_data
    from monitoring.stats.binning import ScoreHistogram, quantile_edges

    ref, cur = _data(rows)
    spec = drift_data.spec()
    bins = _columnar_bins(spec, ref.columns)
    acc: dict[str, float] = {}

    @contextmanager
    def clock(label: str) -> Any:
        start = time.process_time()
        yield
        acc[label] = acc.get(label, 0.0) + time.process_time() - start

    for sample in (ref, cur):
        idx = np.arange(len(sample))
        for fb in bins:
            raw = sample.columns[fb.name]
            if fb.dtype != "numeric":
                cats = np.asarray(fb.categories)
                order = np.argsort(cats)
                with clock("columnar: category codes (numpy strings)"):
                    np.searchsorted(cats[order], raw)
                continue
            if sample is ref:
                with clock("columnar: quantile_edges (reference)"):
                    quantile_edges(raw, 50)
            edges = np.asarray(fb.edges)
            with clock("columnar: searchsorted into the edges"):
                found = np.searchsorted(edges, raw, side="right")
            with clock("columnar: astype, isnan, where (codes, values)"):
                codes = found.astype(np.int64)
                np.isnan(raw)
                values = np.where(np.isfinite(raw), raw, 0.0)
            with clock("_profile_slice: codes[idx], 3 counts, bincount"):
                c = codes[idx]
                valid = c >= 0
                for k in (-1, -2, -3):
                    np.count_nonzero(c == k)
                np.bincount(c[valid], minlength=fb.n_bins).tolist()
            with clock("_profile_slice: per-bin sums (weighted bincount)"):
                np.bincount(c[valid], weights=values[idx][valid], minlength=fb.n_bins)
        with clock("_profile_slice: ScoreHistogram.from_arrays"):
            ScoreHistogram.from_arrays(sample.scores, sample.labels)
    columnar = acc
    acc = {}
    stored_rows = drift_data.rows_of(cur)
    for fb in bins:
        with clock("_Columns: list(map(dict.get, rows, repeat(name)))"):
            raw_list = list(map(dict.get, stored_rows, repeat(fb.name)))
        if fb.dtype == "numeric":
            with clock("numeric_array: np.array(list, dtype=float)"):
                np.array(raw_list, dtype=float)
            with clock("numeric_array: any(type(v) is bool ...) (Batch.wrong_type None)"):
                any(type(v) is bool for v in raw_list)
        else:
            with clock("_category_codes (object array ==)"):
                profile_data._category_codes(fb, raw_list)
    with clock("reference.build_profile: [row.get(name) for row in rows] x 20"):
        {f["name"]: [r.get(f["name"]) for r in stored_rows] for f in spec}
    stored = acc
    for title, part in (
        ("columnar profile, 2 samples", columnar),
        ("stored shape, 1 sample", stored),
    ):
        total = sum(part.values())
        print(f"  {title}: {total:.3f} s CPU")
        for k, v in sorted(part.items(), key=lambda kv: -kv[1]):
            print(f"    {k:<66} {v:7.3f} s  {100 * v / total:4.1f}%")
    return {"columnar": columnar, "stored_current": stored}


RUNNERS: dict[str, Callable[[int], dict[str, Any]]] = {
    "vigil": run_vigil,
    "vigil-stored": run_vigil_stored,
    "scipy": run_scipy,
    "nannyml": run_nannyml,
    "evidently": run_evidently,
    "agreement": run_agreement,
    "breakdown": run_breakdown,
}


# --- the table -------------------------------------------------------------------------------


def _load(out: Path) -> dict[str, dict[str, Any]]:
    return {
        p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.stem in RUNNERS
    }


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def table(out: Path) -> str:
    res = _load(out)
    lines = []
    rows = next(iter(res.values()))["rows"] if res else 0
    lines.append(f"Data: 2 × {rows:,} rows × 20 features; drifted: {', '.join(DRIFTED)}\n")
    lines.append(
        "| engine | wall s | CPU s | load (1 min) | Evidently ÷ engine (wall / CPU) |"
        " NannyML ÷ engine (wall / CPU) | drifted flagged | unchanged flagged |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    ev = res.get("evidently", {}).get("total_s")
    nm = res.get("nannyml", {}).get("total_s")
    shown: list[tuple[str, float, float, float, dict[str, Any]]] = []
    for engine in ENGINES:
        if engine not in res:
            continue
        r = res[engine]
        steps = r["timings"]
        cpu = sum(s["cpu_s"] for s in steps.values())
        load = max(s["load_1m"] for s in steps.values())
        shown.append((engine, r["total_s"], cpu, load, r["features"]))
        if engine.startswith("vigil"):
            c, p = steps["compare: feature_drift"], steps["profile: profile_of(current)"]
            shown.append((f"{engine}: profile only", r["profile_s"], cpu - c["cpu_s"], load, {}))
            shown.append(
                (
                    f"{engine}: current profile + compare",
                    p["wall_s"] + c["wall_s"],
                    p["cpu_s"] + c["cpu_s"],
                    max(p["load_1m"], c["load_1m"]),
                    {},
                )
            )
            shown.append((f"{engine}: compare only", c["wall_s"], c["cpu_s"], c["load_1m"], {}))
    ev_cpu = _cpu(res.get("evidently"))
    nm_cpu = _cpu(res.get("nannyml"))
    for engine, wall, cpu, load, feats in shown:
        drifted = sum(1 for f in DRIFTED if feats.get(f, {}).get("flag"))
        unchanged = sum(1 for f in FEATURES if f not in DRIFTED and feats.get(f, {}).get("flag"))
        lines.append(
            f"| {engine} | {wall:.3f} | {cpu:.3f} | {load:.2f} | "
            f"{_ratio(ev, wall)} / {_ratio(ev_cpu, cpu)} | "
            f"{_ratio(nm, wall)} / {_ratio(nm_cpu, cpu)} | "
            + (f"{drifted}/5 | {unchanged}/15 |" if feats else "| |")
        )
    if "nannyml" in res:
        fa = res["nannyml"]["false_alerts"]
        lines.append("")
        for p in ("analysis", "reference"):
            a, n = fa[p]["alerts"], fa[p]["cells"]
            lines.append(
                f"NannyML false alerts ({p} chunks × unchanged features): {a}/{n}"
                f" = {100 * a / max(n, 1):.1f}%"
            )
    lines.append(
        "\nPer feature (Vigil bands: default policy; tightest = high tier in launch, ×0.64):\n"
    )
    lines.append(
        "| feature | Vigil KS | Vigil W/SD | Vigil JS | Vigil PSI | Vigil V | Vigil bands |"
        " tightest | scipy KS (p) | Evidently | NannyML alerts (chunks) |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---|---|---|---|---|")
    vg = res.get("vigil", res.get("vigil-stored", {})).get("features", {})
    for name in FEATURES:
        v = vg.get(name, {})
        vals = v.get("values", {})
        bands = v.get("bands", {})
        worst = _raised(bands)
        tight = _raised(v.get("bands_tight", {}))
        sc = res.get("scipy", {}).get("features", {}).get(name, {})
        sc_txt = (
            f"{sc['values']['ks']:.4f} ({sc['p']['ks']:.2g})"
            if "ks" in sc.get("values", {})
            else (f"χ² p {sc['p']['chi2']:.2g}" if sc else "—")
        )
        e = res.get("evidently", {}).get("features", {}).get(name)
        e_txt = (
            f"{next(iter(e['values'].values())):.4f}{' **drift**' if e['flag'] else ''}"
            if e
            else "—"
        )
        n = res.get("nannyml", {}).get("features", {}).get(name)
        n_txt = f"{sum(a['analysis'] for a in n['alerts'].values())}/{n['chunks']}" if n else "—"
        mark = " (drifted)" if name in DRIFTED else ""
        lines.append(
            f"| {name}{mark} | {_fmt(vals.get('ks'))} | {_fmt(vals.get('wasserstein'))} | "
            f"{_fmt(vals.get('js_distance'))} | {_fmt(vals.get('psi'))} | "
            f"{_fmt(vals.get('chi_square'))} | {worst} | {tight} | {sc_txt} | {e_txt} | {n_txt} |"
        )
    if "agreement" in res:
        lines.append("\nAgreement with scipy (exact data):\n")
        for k, v in res["agreement"]["summary"].items():
            lines.append(f"- {k}: {v}")
    return "\n".join(lines)


def _raised(bands: Mapping[str, str]) -> str:
    """The metrics above green, e.g. "W1 orange, JS yellow"; "green" when none."""
    short = {"wasserstein": "W1", "js_distance": "JS", "ks": "KS", "psi": "PSI", "chi_square": "V"}
    up = [f"{short.get(m, m)} {b}" for m, b in bands.items() if b not in ("green", "insufficient")]
    return ", ".join(up) if up else ("green" if bands else "—")


def _cpu(r: dict[str, Any] | None) -> float | None:
    return sum(s["cpu_s"] for s in r["timings"].values()) if r else None


def _ratio(a: float | None, b: float) -> str:
    if not a or not b:
        return "—"
    x = a / b
    return f"{x:.0f}×" if x >= 10 else f"{x:.1f}×"


# --- entry -----------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:
        pass
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in cpu.splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return info


def run_one(engine: str, rows: int, out: Path) -> None:
    print(f"== {engine} ({rows:,} rows)  load {os.getloadavg()}", flush=True)
    result = RUNNERS[engine](rows)
    result.update(engine=engine, rows=rows, machine=_machine(), loadavg_end=os.getloadavg())
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{engine}.json").write_text(json.dumps(result, indent=1, default=_json_default))
    print(f"  → {out / (engine + '.json')}", flush=True)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("run", help="one engine (or the agreement check) in this process")
    one.add_argument("engine", choices=list(RUNNERS))
    for p in (one, sub.add_parser("all", help="every engine in turn, then agreement and table")):
        p.add_argument("--rows", type=int, default=drift_data.ROWS)
        p.add_argument("--out", type=Path, default=Path("/tmp/drift-bench"))
    tab = sub.add_parser("table", help="the markdown table of DIR/*.json")
    tab.add_argument("--out", type=Path, default=Path("/tmp/drift-bench"))
    args = ap.parse_args(argv)
    if args.cmd == "run":
        run_one(args.engine, args.rows, args.out)
    elif args.cmd == "all":
        for engine in (*ENGINES, "agreement"):
            cmd = [
                sys.executable,
                __file__,
                "run",
                engine,
                "--rows",
                str(args.rows),
                "--out",
                str(args.out),
            ]
            try:
                subprocess.run(cmd, check=True, timeout=TIMEOUT_S.get(engine, DEFAULT_TIMEOUT_S))
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                print(f"  {engine} did not finish: {exc}", flush=True)
        print(table(args.out))
    else:
        print(table(args.out))


if __name__ == "__main__":
    main()
