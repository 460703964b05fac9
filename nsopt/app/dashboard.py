"""What a job shows in wandb, as data: live history rows, flow tables, sweep scalars.

Series are named ``<algorithm>/<quantity>`` over all runs and ``<algorithm>/s=<scale>/<quantity>``
per step scale, so wandb's panels group them naturally; every row carries ``k`` (the x-axis;
``<algorithm>/tau`` is the alternative).  Statistics are over the runs whose value is finite.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["stats", "flat", "record_rows", "flow_tables", "sweep_scalars", "array_tables"]


def stats(x: np.ndarray) -> dict[str, float | None]:
    """Mean, median, 10/90% quantiles, min, max of the finite entries (``None`` when there are none)."""
    x = np.asarray(x)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": None, "median": None, "q10": None, "q90": None, "min": None, "max": None}
    q10, med, q90 = np.quantile(x, [0.1, 0.5, 0.9])
    return {"mean": float(x.mean()), "median": float(med), "q10": float(q10), "q90": float(q90),
            "min": float(x.min()), "max": float(x.max())}


def _quantiles(x: np.ndarray) -> dict[str, float] | None:
    """Median, 10/90% quantiles and mean of the finite entries (``None`` if none)."""
    st = stats(x)
    return None if st["median"] is None else {k: st[k] for k in ("median", "q10", "q90", "mean")}


def record_rows(name: str, recs: Mapping[str, Any], scales: Sequence[float]) -> list[dict[str, float]]:
    """History rows for one chunk of records (``objective`` and ``tau`` of shape (seeds, inits,
    scales, records)): one row per record ``k``."""
    obj = np.asarray(recs["objective"])
    tau = np.asarray(recs["tau"])
    k = np.asarray(recs["k"]).reshape(-1, obj.shape[3])[0]
    rows = []
    for r in range(obj.shape[3]):
        row: dict[str, float] = {"k": int(k[r]), f"{name}/tau": float(np.median(tau[..., r]))}
        groups = [("", obj[..., r])]
        if len(scales) > 1:
            groups += [(f"s={s:g}/", obj[:, :, j, r]) for j, s in enumerate(scales)]
        for prefix, values in groups:
            q = _quantiles(values.reshape(-1))
            for stat, v in (q or {}).items():
                row[f"{name}/{prefix}objective_{stat}"] = v
            row[f"{name}/{prefix}finite_runs"] = int(np.isfinite(values).sum())
        rows.append(row)
    return rows


def flow_tables(arrays: Mapping[str, np.ndarray], names: Sequence[str],
                scales: Sequence[float]) -> list[tuple[str, list[str], list[list[Any]], tuple[str, str, str]]]:
    """One table per algorithm and flow quantity: the APT distance (median, band, the flow's error
    estimate) against the start time, the Lyapunov curve against tau, per step scale."""
    out = []
    for n in names:
        if f"{n}/apt_distance" in arrays:
            d, err, t = arrays[f"{n}/apt_distance"], arrays.get(f"{n}/apt_error"), arrays[f"{n}/apt_times"]
            data = []
            for j, s in enumerate(scales):
                for i, tj in enumerate(t):
                    q = _quantiles(d[:, :, j, i].reshape(-1))
                    if q is None:
                        continue
                    e = None if err is None else _quantiles(err[:, :, j, i].reshape(-1))
                    data.append([float(s), float(tj), q["median"], q["q10"], q["q90"],
                                 None if e is None else e["median"]])
            out.append((f"{n}/flow/apt", ["scale", "t", "apt_median", "apt_q10", "apt_q90", "error_median"], data,
                        ("t", "apt_median", f"{n}: APT distance to the flow vs start time t")))
        if f"{n}/lyapunov" in arrays:
            E, tau = arrays[f"{n}/lyapunov"], arrays[f"{n}/lyapunov_tau"]
            data = []
            for j, s in enumerate(scales):
                for i in range(E.shape[-1]):
                    q = _quantiles(E[:, :, j, i].reshape(-1))
                    if q is not None:
                        data.append([float(s), float(np.median(tau[:, :, j, i])), q["median"], q["q10"], q["q90"]])
            out.append((f"{n}/flow/lyapunov", ["scale", "tau", "E_median", "E_q10", "E_q90"], data,
                        ("tau", "E_median", f"{n}: Lyapunov function along the iterates")))
    return out


def sweep_scalars(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The scalars a sweep compares, flat: final objective statistics, divergences, last APT
    distance and its resolution, times (main job); metrics and claims (presets)."""
    out: dict[str, Any] = {"total_s": summary.get("total_s")}
    for name, a in (summary.get("algorithms") or {}).items():
        fo = a["final_objective"]
        out.update({f"{name}/final_objective_{k}": fo[k] for k in ("median", "q10", "q90", "mean")})
        out.update({f"{name}/diverged": a["diverged"], f"{name}/runs": a["runs"], f"{name}/run_s": a["run_s"],
                    f"{name}/compile_s": a["compile_s"]})
        for s, ps in (a.get("per_scale") or {}).items():
            out[f"{name}/s={s}/final_objective_median"] = ps["final_objective"]["median"]
            out[f"{name}/s={s}/diverged"] = ps["diverged"]
        fl = a.get("flow") or {}
        for key in ("apt_first_median", "apt_last_median", "error_last_median", "resolved_fraction"):
            if key in fl:
                out[f"{name}/{key}"] = fl[key]
    if "claims" in summary:
        out["claims_hold"] = summary.get("claims_hold")
        out.update({f"claims/{k}": v for k, v in summary["claims"].items()})
        out.update({f"metrics/{k}": v for k, v in flat(summary.get("metrics") or {}).items()})
    return out


def flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested scalars as ``{"a/b/c": value}`` (lists and arrays left out)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flat(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[f"{prefix}{k}"] = v
    return out


def array_tables(arrays: Mapping[str, np.ndarray], max_size: int = 20000) -> list[tuple[str, list[str], list]]:
    """A preset's curves as tables: each 1-D array (``index, value``) and each small 2-D array
    (``curve, index, value``) up to ``max_size`` entries."""
    out = []
    for key, a in arrays.items():
        a = np.asarray(a)
        if a.size > max_size or a.dtype.kind not in "fiub":
            continue
        if a.ndim == 1:
            out.append((f"arrays/{key}", ["index", "value"], [[i, float(v)] for i, v in enumerate(a)]))
        elif a.ndim == 2:
            out.append((f"arrays/{key}", ["curve", "index", "value"],
                        [[c, i, float(v)] for c, row in enumerate(a) for i, v in enumerate(row)]))
    return out
