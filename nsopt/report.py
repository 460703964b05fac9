"""Sweep reports from local results: ``python -m nsopt.report <sweep folder>`` (or ``nsopt-report``).

Reads every job folder of a Hydra multirun (the folders holding ``.hydra/``),
never wandb, and writes into the sweep folder (or ``--out``):

- ``report.csv`` and ``report.md``: one row per job and algorithm with the
  job's overrides, state (``complete`` only when its hashes verify; ``failed``,
  ``killed``, ``corrupt``, ``never_started`` for jobs of ``multirun.yaml`` with no folder), final
  objective mean / median / q10 / q90 over the runs that did not diverge, the
  number of diverged runs, the median APT distance at the last start time with the flow's
  error estimate there and the fraction of resolved windows (error <= 0.1 x distance)
  (when the job computed it) and the job's time;
- ``report_objective.png``: median objective vs interpolation time ``tau``
  (10-90% band over runs), one curve per job, one panel per algorithm;
- ``report_apt.png``: median APT distance vs start time, when available.

Every job of the sweep is listed with its state; none is fatal.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nsopt.app.run_folder import RunFolder, write_text

__all__ = ["Job", "collect", "expected_jobs", "write_report", "main"]


@dataclass
class Job:
    """One job of a sweep, with its :meth:`RunFolder.state` (``never_started`` when it has no folder)."""

    folder: Path
    overrides: list[str]
    status: str  # one of nsopt.app.run_folder.STATES, or never_started
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def label(self) -> str:
        return ",".join(self.overrides) or "defaults"

    def metrics(self) -> dict[str, np.ndarray]:
        if self.status != "complete":
            return {}
        return RunFolder(self.folder).read_metrics()


def _overrides(folder: Path) -> list[str]:
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path) if not str(o).startswith("hydra")]


def expected_jobs(sweep: str | Path) -> list[list[str]] | None:
    """The override list of every job of the sweep, in job-number order, from its ``multirun.yaml``
    (the basic sweeper's cartesian product), or ``None`` when it cannot be read."""
    path = Path(sweep) / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(path)
        params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
        args = [f"{k}={v}" for k, v in params.items()] + list(OmegaConf.select(cfg, "hydra.overrides.task") or [])
        parsed = OverridesParser.create().parse_overrides(args)
        batches = BasicSweeper.split_arguments(parsed, None)
    except Exception:  # noqa: BLE001 - another sweeper or an unreadable file: folders only
        return None
    return [[o for o in job if not o.startswith("hydra")] for job in batches[0]]


def collect(sweep: str | Path) -> list[Job]:
    """Every job of ``sweep``: the folders found (verified through :class:`RunFolder`) and the jobs
    listed in ``multirun.yaml`` that never started, sorted by job number."""
    sweep = Path(sweep)
    if not sweep.is_dir():
        raise FileNotFoundError(f"sweep folder {sweep} does not exist")
    marks = (".hydra", RunFolder.CONFIG, RunFolder.FAILED)
    folders = sorted({p.parent for m in marks for p in sweep.rglob(m)
                      if p.parent != sweep and ".replaced-" not in str(p) and p.parent.name != ".hydra"},
                     key=lambda p: (len(p.parts), int(p.name) if p.name.isdigit() else 10**9, p.name))
    jobs = []
    for folder in folders:
        rf = RunFolder(folder)
        st = rf.state()
        status = st.state if st.state != "missing" else "killed"
        summary = rf.read_summary() or {} if status == "complete" else {}
        jobs.append(Job(folder, _overrides(folder), status, summary, None if status == "complete" else st.reason))
    expected = expected_jobs(sweep)
    if expected:
        have = {j.folder.name for j in jobs}
        for num, ov in enumerate(expected):
            if str(num) not in have:
                jobs.append(Job(sweep / str(num), ov, "never_started",
                                error="listed in multirun.yaml, no folder (never started or removed)"))
        jobs.sort(key=lambda j: (int(j.folder.name) if j.folder.name.isdigit() else 10**9, j.folder.name))
    return jobs


def _missing_numbers(jobs: Sequence[Job]) -> list[int]:
    nums = sorted(int(j.folder.name) for j in jobs if j.folder.name.isdigit() and j.status != "never_started")
    listed = {int(j.folder.name) for j in jobs if j.status == "never_started"}
    return sorted((set(range(nums[-1] + 1)) - set(nums)) | listed) if nums else sorted(listed)


def _rows(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    rows = []
    for job in jobs:
        base = {"job": job.folder.name, "overrides": job.label, "status": job.status,
                "time_s": job.summary.get("total_s")}
        algs = job.summary.get("algorithms")
        if job.status != "complete":
            rows.append({**base, "algorithm": None, "error": job.error})
            continue
        if not algs:  # a paper preset: its scalar metrics
            flat = {f"metric/{k}": v for k, v in job.summary.get("metrics", {}).items()
                    if isinstance(v, (int, float, str, bool)) or v is None}
            rows.append({**base, "algorithm": job.summary.get("experiment"), **flat})
            continue
        m = job.metrics()
        for name, a in algs.items():
            fo = a["final_objective"]
            apt = m.get(f"{name}/apt_distance")
            ok = m.get(f"{name}/diverged_step")
            apt_end = None
            if apt is not None and ok is not None:
                good = apt[ok < 0]
                if good.size:
                    apt_end = float(np.nanmedian(good[..., -1]))
            flow = a.get("flow") or {}
            rows.append({**base, "algorithm": name, "F_mean": fo["mean"], "F_median": fo["median"],
                         "F_q10": fo["q10"], "F_q90": fo["q90"], "diverged": a["diverged"],
                         "runs": a["runs"], "apt_end_median": apt_end,
                         # the flow's own discretization error next to the distance it qualifies: an
                         # APT distance is read as resolved only where error <= 0.1 x distance
                         "apt_end_error_median": flow.get("error_last_median"),
                         "apt_resolved_fraction": flow.get("resolved_fraction")})
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def write_report(sweep: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write ``report.csv``, ``report.md`` and figures; return ``{"rows", "jobs", "missing", "files"}``."""
    sweep = Path(sweep)
    out = Path(out) if out else sweep
    jobs = collect(sweep)
    out.mkdir(parents=True, exist_ok=True)
    known = [set(j.overrides) for j in jobs if j.overrides]
    common = set.intersection(*known) if known else set()
    for j in jobs:  # label jobs by what varies across the sweep
        j.overrides = [o for o in j.overrides if o not in common]
    rows = _rows(jobs)
    missing = _missing_numbers(jobs)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf_lines: list[str] = []
    if rows:
        import io as _io

        buf = _io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        write_text(out / "report.csv", buf.getvalue())
        buf_lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        buf_lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    else:
        write_text(out / "report.csv", "")
    counts = ", ".join(f"{sum(j.status == s for j in jobs)} {s.replace('_', ' ')}"
                       for s in ("complete", "failed", "killed", "corrupt", "other_config", "never_started"))
    head = [f"# Sweep report: {sweep.name}", "",
            f"{len(jobs)} jobs: {counts}" + (f"; missing job numbers: {missing}" if missing else "") + ".", "",
            f"Overrides common to all jobs: `{' '.join(sorted(common)) or '(none)'}`.", ""]
    problems = [f"- job {j.folder.name} [{j.label}]: {j.status}: {j.error}" for j in jobs if j.status != "complete"]
    if problems:
        head += ["Not complete:", "", *problems, ""]
    files = [out / "report.csv", out / "report.md"]
    figs = _figures(jobs, out)
    files += figs
    if figs:
        buf_lines += ["", *[f"![{p.stem}]({p.name})" for p in figs]]
    write_text(out / "report.md", "\n".join(head + buf_lines) + "\n")
    return {"rows": rows, "jobs": jobs, "missing": missing, "files": files}


def _figures(jobs: Sequence[Job], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [(j, j.metrics()) for j in jobs if j.status == "complete" and j.summary.get("algorithms")]
    if not done:
        return []
    algs = sorted({a for j, _ in done for a in j.summary["algorithms"]})
    paths = []
    for kind, key, ylabel in (("objective", "objective", "objective F(w(t))"),
                              ("apt", "apt_distance", "APT distance d_T(t)")):
        if not any(f"{a}/{key}" in m for _, m in done for a in algs):
            continue
        fig, axes = plt.subplots(1, len(algs), figsize=(6.5 * len(algs), 4.5), dpi=110, squeeze=False)
        for ax, alg in zip(axes[0], algs):
            for i, (job, m) in enumerate(done):
                if f"{alg}/{key}" not in m:
                    continue
                ok = m[f"{alg}/diverged_step"].reshape(-1) < 0
                y = m[f"{alg}/{key}"]
                y = y.reshape(-1, y.shape[-1])[ok]
                if kind == "objective":
                    t = np.median(m[f"{alg}/tau"].reshape(-1, y.shape[-1])[ok], axis=0) if ok.any() else None
                else:
                    t = m[f"{alg}/apt_times"].reshape(-1)[: y.shape[-1]]
                if t is None or not len(y):
                    continue
                c = plt.get_cmap("tab10")(i % 10)
                lo, med, hi = np.nanquantile(y, [0.1, 0.5, 0.9], axis=0)
                ax.plot(t, med, color=c, lw=1.8, label=job.label)
                ax.fill_between(t, lo, hi, color=c, alpha=0.15)
            ax.set_yscale("log")
            if kind == "apt":
                ax.set_xscale("log")
            ax.set_xlabel("t (interpolation time tau)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{alg}: median and 10-90% band over runs")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(RunFolder(out).write_figure(f"report_{kind}", fig, dpi=110))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nsopt-report", description="Summarize a sweep folder's local results.")
    ap.add_argument("sweep", help="the sweep folder (hydra.sweep.dir)")
    ap.add_argument("--out", default=None, help="output folder (default: the sweep folder)")
    args = ap.parse_args(argv)
    try:
        res = write_report(args.sweep, args.out)
    except FileNotFoundError as e:
        print(f"nsopt-report: {e}", file=sys.stderr)
        return 2
    jobs = res["jobs"]
    print(f"nsopt-report: {len(jobs)} jobs ({sum(j.status == 'complete' for j in jobs)} complete); "
          f"wrote {', '.join(str(p) for p in res['files'])}")
    for j in jobs:
        if j.status != "complete":
            print(f"  job {j.folder.name} [{j.label}]: {j.status}: {j.error}")
    if res["missing"]:
        print(f"  missing job numbers: {res['missing']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
