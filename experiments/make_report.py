"""Render results/REPORT.md from the presets' full-size summaries, and check that it is current.

Claims are data: every number that REPORT.md quotes is a placeholder in a template
``results/report/<name>.md`` (prose in words, numbers never typed by hand), filled from the
preset's full-size ``summary.json``, which is stored as ``results/report/data/<name>.json``
(``metrics``, ``claims``, ``params``) so that a reader sees where each number comes from.
Timings live apart, in ``results/report/data/timings.json``, with a note on the machine.

Placeholders: ``{{metrics.c3.period_tau:.4g}}``, ``{{params.num_steps}}``,
``{{claims.c3/cycles}}``, ``{{smoke.num_steps}}`` (the ``smoke`` block of
``conf/experiment/<name>.yaml``), ``{{time.total_s:.2g}}`` (timings).  A path is split at
dots, a key that itself holds dots (``final_loss_median.0.5``) is matched greedily, list
items by index.  The format spec is Python's; without one a float gets ``.3g`` (fixed
significant digits, so float noise between machines of the same kind does not flip a digit),
a bool ``holds``/``does not hold``, a list its items joined by ``, ``.

Usage::

    python experiments/make_report.py                # run every preset at full size, write data,
                                                     # figures and REPORT.md (about 5 min, 2 cores)
    python experiments/make_report.py --check        # re-run into a temp folder; exit 1 if a claim
                                                     # fails or a number of REPORT.md differs
    python experiments/make_report.py --only cycles  # one preset (with or without --check)
    python experiments/make_report.py --render       # re-render REPORT.md from the stored data
    python experiments/make_report.py --check --keep DIR --json DIR/check.json
                                                     # also keep the run folders and the outcome
                                                     # (tests/presets/test_full_size.py reads them)

Each preset runs as ``python -m nsopt experiment=<name> logger=none run_dir=<dir>`` in a
fresh process (the command the report quotes), one at a time.  ``--check`` compares timings
with a factor ``--time-tolerance`` (default 3) and reports them separately: a timing outside
it is a warning (machines differ), an error only with ``--strict-timings``.  Numbers are compared
as rendered; two floats that render differently but agree to ``--rtol`` (default 1e-4) sat on a
rounding boundary of their format and are listed apart, not failed (floating-point results may
differ in the last bits between CPUs).
results/benchmarks.md is assembled from ``results/benchmarks_<topic>.md`` as before.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nsopt.presets import NAMES  # noqa: E402

RESULTS = ROOT / "results"
TEMPLATES = RESULTS / "report"
DATA = TEMPLATES / "data"
TIMINGS = DATA / "timings.json"
BENCHMARKS = ("core", "flow", "lasso", "deq", "qp", "sweep", "cache", "training")
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
#: a metric leaf that is a wall-clock time (kept with the timings, never compared as a number)
TIMING_KEY = re.compile(r"(seconds|(^|/)time_\w*_s|^(compile|run|evaluate|total|wall|flow)_s)$")
TIME_TOLERANCE = 3.0
#: --check: relative difference below which two floats that round differently are not a change
RTOL = 1e-4

REPORT_HEAD = """# nsopt: what the runs show

Each section is one paper preset: `python -m nsopt experiment=<name>` (add `smoke=true` for the
reduced size run in CI). Each gives what the theory predicts (docs/theory.md), what the full-size run
shows and which of the preset's claims hold. This file is generated: every number in it is a
placeholder of `results/report/<name>.md` filled from the preset's full-size summary
(`results/report/data/<name>.json`) by `python experiments/make_report.py`, and
`python experiments/make_report.py --check` re-runs every preset and fails if a claim does not
hold or a number differs. Timings are listed apart at the end. The main job (`python -m nsopt`)
is shown in the README.

"""


class CheckError(Exception):
    """A claim that does not hold, or a number of REPORT.md that differs from the regenerated one."""


# ---------------------------------------------------------------------------------------------
# data: summary.json -> (data, timings)
# ---------------------------------------------------------------------------------------------


def split_timings(metrics: Any, prefix: str = "metrics") -> tuple[Any, dict[str, float]]:
    """``metrics`` without its timing leaves, and those leaves as ``{dotted path: seconds}``."""
    timings: dict[str, float] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                sub = f"{path}.{k}"
                if TIMING_KEY.search(str(k)) and isinstance(v, (int, float)) and not isinstance(v, bool):
                    timings[sub] = float(v)
                else:
                    out[k] = walk(v, sub)
            return out
        return node

    return walk(metrics, prefix), timings


def data_of(summary: dict) -> tuple[dict, dict[str, float]]:
    """The stored data of one preset (``metrics``/``claims``/``params``) and its timings."""
    metrics, timings = split_timings(summary.get("metrics", {}))
    timings["total_s"] = float(summary.get("total_s", float("nan")))
    data = {"experiment": summary.get("experiment"), "claims": summary.get("claims", {}),
            "claims_hold": summary.get("claims_hold"), "params": summary.get("params", {}),
            "metrics": metrics}
    return data, timings


def machine_note() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs), "
            f"Python {platform.python_version()}, {platform.system()}")


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def lookup(node: Any, parts: list[str], path: str) -> Any:
    """Resolve dotted ``parts`` in ``node``; a key holding dots is matched greedily."""
    if not parts:
        return node
    if isinstance(node, dict):
        for j in range(len(parts), 0, -1):
            key = ".".join(parts[:j])
            if key in node:
                return lookup(node[key], parts[j:], path)
        raise KeyError(f"{path}: no key {parts[0]!r} (keys: {sorted(map(str, node))[:12]})")
    if isinstance(node, (list, tuple)):
        try:
            return lookup(node[int(parts[0])], parts[1:], path)
        except (ValueError, IndexError):
            raise KeyError(f"{path}: {parts[0]!r} is not an index of a list of {len(node)}") from None
    raise KeyError(f"{path}: {parts[0]!r} below a {type(node).__name__}")


def fmt(value: Any, spec: str) -> str:
    if isinstance(value, bool):
        return format(value, spec) if spec else ("holds" if value else "does not hold")
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, spec) for v in value)
    if value is None:
        return "none"
    if isinstance(value, float) and not spec:
        spec = ".3g"
    return format(value, spec)


def resolve(template: str, context: dict) -> list[tuple[str, Any, str]]:
    """``(placeholder, value, format spec)`` for each placeholder of ``template``, in order."""
    out = []
    for m in PLACEHOLDER.finditer(template):
        path, _, spec = m.group(1).partition(":")
        out.append((m.group(0), lookup(context, path.strip().split("."), path.strip()), spec.strip()))
    return out


def placeholders(template: str, context: dict) -> list[tuple[str, str]]:
    """``(placeholder, rendered value)`` for each placeholder of ``template``, in order."""
    return [(ph, fmt(value, spec)) for ph, value, spec in resolve(template, context)]


def render_template(template: str, context: dict) -> str:
    values = iter(v for _, v in placeholders(template, context))
    return PLACEHOLDER.sub(lambda m: next(values), template)


def smoke_block(name: str) -> dict:
    from omegaconf import OmegaConf

    path = ROOT / "conf" / "experiment" / f"{name}.yaml"
    if not path.is_file():
        return {}
    node = OmegaConf.to_container(OmegaConf.load(path)).get("experiment", {})
    return node.get("smoke") or {}


def context_of(name: str, data: dict, timings: dict) -> dict:
    ctx = dict(data)
    ctx["time"] = dict(timings)
    ctx["smoke"] = smoke_block(name)
    return ctx


def claims_lines(claims: dict) -> str:
    rows = [f"- `{k}`: {'HOLDS' if v else 'DOES NOT HOLD'}" for k, v in claims.items()]
    return "Claims at full size (`summary.json` of `python -m nsopt experiment=...`):\n\n" + "\n".join(rows)


def render_section(name: str, data: dict | None, timings: dict) -> str:
    template = TEMPLATES / f"{name}.md"
    head = f"## `{name}`\n"
    if not template.is_file():
        raise CheckError(f"{name}: a preset without a section: write results/report/{name}.md (prose with "
                         f"{{{{metrics...}}}} placeholders), then python experiments/make_report.py --only {name}")
    if data is None:
        raise CheckError(f"{name}: template results/report/{name}.md but no data "
                         f"results/report/data/{name}.json; run: python experiments/make_report.py --only {name}")
    body = template.read_text().strip()
    if body.startswith("#"):  # the template's own title is for a reader of the template
        body = body.split("\n", 1)[1].strip() if "\n" in body else ""
    body = render_template(body, context_of(name, data, timings))
    body = body.replace("](../figures/", "](figures/")
    if (RESULTS / "figures" / f"{name}.png").is_file() and f"figures/{name}.png" not in body:
        body = f"![{name}](figures/{name}.png)\n\n" + body
    return head + "\n" + body + "\n\n" + claims_lines(data["claims"]) + "\n"


def timings_section(timings: dict) -> str:
    machine = timings.get("_machine", "unknown machine")
    lines = ["## Timings\n",
             f"Measured by `python experiments/make_report.py` on {machine}, one preset at a time. "
             f"`preset` is the preset's own time (`summary.json`'s `total_s`), `wall` the whole command "
             f"with Python and JAX start-up. `--check` compares them within a factor {TIME_TOLERANCE:g} "
             f"and reports them apart from the numbers.\n",
             "| preset | preset (s) | wall (s) |", "|---|---:|---:|"]
    for name in NAMES:
        t = timings.get(name)
        if t:
            lines.append(f"| `{name}` | {t.get('total_s', float('nan')):.1f} | {t.get('wall_s', float('nan')):.1f} |")
    return "\n".join(lines) + "\n"


def build_report(datas: dict[str, dict | None], timings: dict) -> str:
    parts = [REPORT_HEAD]
    for name in NAMES:
        parts.append(render_section(name, datas.get(name), timings.get(name, {})))
    parts.append(timings_section(timings))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# running the presets
# ---------------------------------------------------------------------------------------------


def run_preset(name: str, run_dir: Path) -> tuple[dict, float]:
    """``python -m nsopt experiment=<name> logger=none run_dir=<run_dir>`` at full size: (summary, wall s)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("WANDB_MODE", "disabled")
    cmd = [sys.executable, "-m", "nsopt", f"experiment={name}", "logger=none", f"run_dir={run_dir}"]
    print(f"make_report: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith("nsopt:"):
            print("  " + line, flush=True)
    if proc.returncode != 0:
        raise CheckError(f"{name}: the full-size run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads((run_dir / "summary.json").read_text()), wall


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=False, allow_nan=True) + "\n")


def stored() -> tuple[dict[str, dict | None], dict]:
    datas = {name: read_json(DATA / f"{name}.json") for name in NAMES}
    return datas, read_json(TIMINGS) or {}


def raw_values(template: str, context: dict) -> list[Any]:
    """The unformatted value of each placeholder of ``template``, in order."""
    return [value for _, value, _ in resolve(template, context)]


def rounding_jitter(a: Any, b: Any, rtol: float) -> bool:
    """True when two floats that render differently are equal to ``rtol``: the stored value sat on a
    rounding boundary of its format, and floating-point noise between machines moved it across."""
    if isinstance(a, bool) or isinstance(b, bool) or not all(isinstance(v, float) for v in (a, b)):
        return False
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def compare_numbers(name: str, old: dict | None, new: dict, timings: dict,
                    rtol: float = 0.0) -> tuple[list[str], list[str]]:
    """The placeholders of ``name``'s template whose rendered value differs between ``old`` and
    ``new`` (errors), and those that differ only by rounding jitter below ``rtol`` (notes)."""
    template = TEMPLATES / f"{name}.md"
    if not template.is_file():
        return [], []
    text = template.read_text()
    try:
        fresh = placeholders(text, context_of(name, new, timings))
    except KeyError as e:
        return [f"{name}: the regenerated data lacks {e}"], []
    if old is None:
        return [f"{name}: no stored data (results/report/data/{name}.json)"], []
    try:
        before = placeholders(text, context_of(name, old, timings))
    except KeyError as e:
        return [f"{name}: the stored data lacks {e}"], []
    raw_old = raw_values(text, context_of(name, old, timings))
    raw_new = raw_values(text, context_of(name, new, timings))
    errors, notes = [], []
    for (p, b), (_, a), vo, vn in zip(before, fresh, raw_old, raw_new):
        if a == b:
            continue
        if rounding_jitter(vo, vn, rtol):
            notes.append(f"{name}: {p} is {b} in REPORT.md, {a} now: stored {vo!r}, now {vn!r} "
                         f"(equal to rtol {rtol:g}: a rounding boundary, not a change)")
        else:
            errors.append(f"{name}: {p} is {b} in REPORT.md, {a} now (stored {vo!r}, now {vn!r})")
    return errors, notes


def compare_timings(name: str, old: dict, new: dict, tol: float) -> list[str]:
    out = []
    for key, t_new in new.items():
        t_old = old.get(key)
        if t_old is None or not (t_old > 0 and t_new > 0):
            continue
        ratio = t_new / t_old
        flag = "" if 1 / tol <= ratio <= tol else f"  OUTSIDE {tol:g}x"
        if key in ("total_s", "wall_s") or flag:
            out.append(f"  {name} {key}: {t_old:.1f} s stored, {t_new:.1f} s now (x{ratio:.2f}){flag}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="re-run at full size and compare with REPORT.md")
    ap.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME", help="these presets only")
    ap.add_argument("--render", action="store_true", help="re-render REPORT.md from the stored data only")
    ap.add_argument("--time-tolerance", type=float, default=TIME_TOLERANCE)
    ap.add_argument("--strict-timings", action="store_true", help="a timing outside the tolerance fails")
    ap.add_argument("--rtol", type=float, default=RTOL,
                    help="--check: two floats equal to this relative tolerance that round differently "
                         "are a rounding boundary (reported, not failed); 0 compares the text only")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep each preset's run folder in DIR/<name>")
    ap.add_argument("--json", type=Path, metavar="PATH",
                    help="write the outcome per preset (claims, number errors, errors) to PATH")
    args = ap.parse_args(argv)
    names = list(args.only or NAMES)
    datas, timings = stored()
    report_path = RESULTS / "REPORT.md"

    if args.render:
        report_path.write_text(build_report(datas, timings))
        (RESULTS / "benchmarks.md").write_text(build_benchmarks())
        print(f"wrote {report_path} from {DATA}, and {RESULTS / 'benchmarks.md'}")
        return 0

    errors: list[str] = []
    jitter: list[str] = []
    timing_lines: list[str] = []
    per_preset: dict[str, dict] = {}
    keep = args.keep.resolve() if args.keep else None
    fresh = dict(datas)
    new_timings = {k: dict(v) if isinstance(v, dict) else v for k, v in timings.items()}
    with tempfile.TemporaryDirectory(prefix="nsopt_report_") as tmp:
        for name in names:
            try:
                summary, wall = run_preset(name, Path(tmp) / name)
            except CheckError as e:
                errors.append(str(e))
                per_preset[name] = {"error": str(e)}
                continue
            data, t = data_of(summary)
            t["wall_s"] = wall
            failed = [k for k, v in data["claims"].items() if not v]
            if not data["claims"]:
                errors.append(f"{name}: the preset states no claim")
            for k in failed:
                errors.append(f"{name}: claim {k} DOES NOT HOLD at full size")
            if keep is not None:
                shutil.copytree(Path(tmp) / name, keep / name, dirs_exist_ok=True)
            per_preset[name] = {"claims": data["claims"], "number_errors": []}
            if args.check:
                errs, notes = compare_numbers(name, datas.get(name), data, timings.get(name, {}), args.rtol)
                errors += errs
                jitter += notes
                per_preset[name]["number_errors"] = errs
                timing_lines += compare_timings(name, timings.get(name, {}), t, args.time_tolerance)
            else:
                write_json(DATA / f"{name}.json", data)
                new_timings[name] = t
                for fig in summary.get("figures", []):
                    if fig == f"{name}.png" or len(summary["figures"]) == 1:
                        (RESULTS / "figures").mkdir(exist_ok=True)
                        shutil.copyfile(Path(tmp) / name / fig, RESULTS / "figures" / f"{name}.png")
            # --check: a preset whose numbers are unchanged (up to rounding jitter) keeps its stored data,
            # so that the whole-text comparison below tests only that REPORT.md is rendered from the templates
            fresh[name] = datas.get(name) if args.check and not per_preset[name]["number_errors"] else data
            print(f"make_report: {name}: {sum(data['claims'].values())} of {len(data['claims'])} claims hold "
                  f"({t['total_s']:.1f} s, {wall:.1f} s wall)", flush=True)

    if args.check:
        try:
            text = build_report(fresh, timings)  # stored timings: they are compared apart
        except (CheckError, KeyError) as e:
            errors.append(str(e))
            text = None
        committed = report_path.read_text() if report_path.is_file() else ""
        if text is not None and text != committed:
            diff = list(difflib.unified_diff(committed.splitlines(), text.splitlines(), "REPORT.md (committed)",
                                             "REPORT.md (regenerated)", n=0, lineterm=""))
            errors.append("results/REPORT.md differs from the regenerated text (numbers above, or a template "
                          "edited without re-rendering):\n" + "\n".join(diff[:40]))
        print(f"\nmake_report --check: timings (tolerance {args.time_tolerance:g}x; reported apart from numbers)")
        print("\n".join(timing_lines) or "  (none stored)")
        if jitter:
            print("\nmake_report --check: numbers on a rounding boundary (not failures):\n" + "\n".join(jitter))
        outside = [ln for ln in timing_lines if "OUTSIDE" in ln]
        if outside and args.strict_timings:
            errors.append(f"{len(outside)} timings outside {args.time_tolerance:g}x (--strict-timings)")
        if args.json:
            write_json(args.json, {"presets": per_preset, "errors": errors, "rounding_jitter": jitter})
        if errors:
            print("\nmake_report --check FAILED:\n" + "\n".join(f"- {e}" for e in errors), file=sys.stderr)
            return 1
        print(f"make_report --check: {len(names)} presets: every claim holds at full size and REPORT.md is current")
        return 0

    if args.json:
        write_json(args.json, {"presets": per_preset, "errors": errors, "rounding_jitter": jitter})
    new_timings["_machine"] = machine_note()
    write_json(TIMINGS, new_timings)
    report_path.write_text(build_report(fresh, new_timings))
    (RESULTS / "benchmarks.md").write_text(build_benchmarks())
    print(f"wrote {report_path}, {DATA} and {RESULTS / 'benchmarks.md'}")
    if errors:
        print("\nmake_report: problems:\n" + "\n".join(f"- {e}" for e in errors), file=sys.stderr)
        return 1
    return 0


def build_benchmarks() -> str:
    parts = ["# Benchmarks\n",
             "Side-by-side timings in one process against the peer each capability replaces; every section "
             "gives the command that produced it. CPU machine with 2 cores unless stated; timings taken while "
             "other jobs shared the machine are marked as such.\n"]
    for topic in BENCHMARKS:
        path = RESULTS / f"benchmarks_{topic}.md"
        if path.is_file():
            lines = path.read_text().strip().splitlines()
            top = min((len(ln) - len(ln.lstrip("#")) for ln in lines if ln.startswith("#")), default=2)
            shift = "#" * max(0, 2 - top)  # each piece's top heading becomes a section (##)
            parts.append("\n".join(shift + ln if ln.startswith("#") else ln for ln in lines) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
