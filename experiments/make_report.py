"""Assemble results/REPORT.md and results/benchmarks.md from the per-experiment pieces.

Each preset's paragraph lives in ``results/report/<name>.md`` and its curated
figure in ``results/figures/<name>.png``; each benchmark writes
``results/benchmarks_<topic>.md``.  Usage::

    python experiments/make_report.py
"""

from __future__ import annotations

from pathlib import Path

from nsopt.presets import NAMES as PRESETS

RESULTS = Path(__file__).resolve().parent.parent / "results"
BENCHMARKS = ("core", "flow", "lasso", "deq", "qp", "sweep", "cache")

REPORT_HEAD = """# nsopt: what the runs show

Each section is one paper preset: `python -m nsopt experiment=<name>` (add `smoke=true` for the
reduced size run in CI). Each gives what the theory predicts (docs/theory.md), what the run shows with
its numbers, the exact command and how long it took on the 2-core CPU machine. The main job
(`python -m nsopt`) is shown in the README.

"""


def build_report() -> str:
    parts = [REPORT_HEAD]
    for name in PRESETS:
        text = RESULTS / "report" / f"{name}.md"
        fig = RESULTS / "figures" / f"{name}.png"
        parts.append(f"## `{name}`\n")
        if text.is_file():
            body = text.read_text().strip()
            if body.startswith("#"):  # drop the piece's own title
                body = body.split("\n", 1)[1].strip() if "\n" in body else ""
            body = body.replace("](../figures/", "](figures/")
            parts.append(body + "\n")
        else:
            body = ""
            parts.append("_Not written yet._\n")
        if fig.is_file() and f"figures/{fig.name}" not in body:
            parts.append(f"![{name}](figures/{fig.name})\n")
    return "\n".join(parts)


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


def main() -> None:
    (RESULTS / "REPORT.md").write_text(build_report())
    (RESULTS / "benchmarks.md").write_text(build_benchmarks())
    print(f"wrote {RESULTS / 'REPORT.md'} and {RESULTS / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
