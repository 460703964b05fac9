"""Sweep reports from local results: ``python -m nsopt.report <sweep folder>`` (or ``nsopt-report``).

Reads every job folder of a Hydra multirun (the folders holding ``.hydra/``),
never wandb, and writes into the sweep folder (or ``--out``):

- ``report.csv`` and ``report.md``: one row per job and algorithm with the
  job's overrides, status (``complete``, ``failed``, ``incomplete``), final
  objective mean / median / q10 / q90 over the runs that did not diverge, the
  number of diverged runs, the median APT distance at the last start time
  (when the job computed it) and the job's time;
- ``report_objective.png``: median objective vs interpolation time ``tau``
  (10-90% band over runs), one curve per job, one panel per algorithm;
- ``report_apt.png``: median APT distance vs start time, when available.

Missing, failed and half-written jobs are listed, never fatal.
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

__all__ = ["Job", "collect", "write_report", "main"]


@dataclass
class Job:
    """One job folder of a sweep."""

    folder: Path
    overrides: list[str]
    status: str  # complete | failed | incomplete
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def label(self) -> str:
        return ",".join(self.overrides) or "defaults"

    def metrics(self) -> dict[str, np.ndarray]:
        path = self.folder / "metrics.npz"
        if self.status != "complete" or not path.is_file():
            return {}
        with np.load(path) as m:
            return {k: m[k] for k in m.files}


def _overrides(folder: Path) -> list[str]:
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path) if not str(o).startswith("hydra")]


def collect(sweep: str | Path) -> list[Job]:
    """All job folders under ``sweep`` (sorted by job number when numeric), with their status."""
    sweep = Path(sweep)
    if not sweep.is_dir():
        raise FileNotFoundError(f"sweep folder {sweep} does not exist")
    folders = sorted({p.parent for p in sweep.rglob(".hydra") if p.is_dir()},
                     key=lambda p: (len(p.parts), int(p.name) if p.name.isdigit() else 10**9, p.name))
    jobs = []
    for folder in folders:
        ov = _overrides(folder)
        summary_path, failed_path = folder / "summary.json", folder / "failed.json"
        try:
            summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        except ValueError:
            summary = {}
        if summary.get("complete"):
            jobs.append(Job(folder, ov, "complete", summary))
        elif failed_path.is_file():
            try:
                err = json.loads(failed_path.read_text()).get("error")
            except ValueError:
                err = "unreadable failed.json"
            jobs.append(Job(folder, ov, "failed", error=err))
        else:
            jobs.append(Job(folder, ov, "incomplete", error="no complete summary.json (killed or still running)"))
    return jobs


def _missing_numbers(jobs: Sequence[Job]) -> list[int]:
    nums = sorted(int(j.folder.name) for j in jobs if j.folder.name.isdigit())
    return sorted(set(range(nums[-1] + 1)) - set(nums)) if nums else []


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
            rows.append({**base, "algorithm": name, "F_mean": fo["mean"], "F_median": fo["median"],
                         "F_q10": fo["q10"], "F_q90": fo["q90"], "diverged": a["diverged"],
                         "runs": a["runs"], "apt_end_median": apt_end})
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
    from nsopt.app import io

    buf_lines: list[str] = []
    if rows:
        import io as _io

        buf = _io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        io.write_text(out / "report.csv", buf.getvalue())
        buf_lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        buf_lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    else:
        io.write_text(out / "report.csv", "")
    n_ok = sum(j.status == "complete" for j in jobs)
    head = [f"# Sweep report: {sweep.name}", "",
            f"{len(jobs)} job folders: {n_ok} complete, "
            f"{sum(j.status == 'failed' for j in jobs)} failed, {sum(j.status == 'incomplete' for j in jobs)} incomplete"
            + (f"; missing job numbers: {missing}" if missing else "") + ".", "",
            f"Overrides common to all jobs: `{' '.join(sorted(common)) or '(none)'}`.", ""]
    problems = [f"- job {j.folder.name} [{j.label}]: {j.status}: {j.error}" for j in jobs if j.status != "complete"]
    if problems:
        head += ["Not complete:", "", *problems, ""]
    files = [out / "report.csv", out / "report.md"]
    figs = _figures(jobs, out)
    files += figs
    if figs:
        buf_lines += ["", *[f"![{p.stem}]({p.name})" for p in figs]]
    io.write_text(out / "report.md", "\n".join(head + buf_lines) + "\n")
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
        path = out / f"report_{kind}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
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
