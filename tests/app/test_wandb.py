"""wandb dashboards, read back from the offline run file: live history, flow tables, resolved config,
sweep scalars, results as an artifact."""

import json

import numpy as np

from nsopt.app.wandb_records import find_run_file, read_run

from app_helpers import cli_env, nsopt_cli


def test_offline_run_holds_live_curves_tables_config_summary_and_artifact(tmp_path):
    env = cli_env(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"), WANDB_CONFIG_DIR=str(tmp_path / "wb"))
    env.pop("WANDB_API_KEY", None)
    run = tmp_path / "run"
    out = nsopt_cli(["seeds=8", "inits=4", "num_steps=40000", "record_every=200", "scales=[0.5,1.0]",
                     "logger=wandb", "figures=false", "flow.steps=64", f"hydra.run.dir={run}"], tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    rec = read_run(find_run_file(run / "wandb"), wait_s=30)
    assert rec["complete"]
    m = np.load(run / "metrics.npz")
    summary = json.loads((run / "summary.json").read_text())

    # live: the history rows of each algorithm arrive in several chunks spread over the run time
    hist = [h for h in rec["history"] if "sgd/objective_median" in h]
    assert [h["k"] for h in hist] == m["k"].tolist()
    stamps = [h["_timestamp"] for h in hist]
    run_s = summary["algorithms"]["sgd"]["run_s"]
    # logged at the end, all rows would share one instant; logged per chunk they span the run
    assert run_s > 0.2 and stamps[-1] - stamps[0] >= 0.25 * run_s, (stamps[0], stamps[-1], run_s)
    assert len({round(t, 2) for t in stamps}) >= 5
    med = np.median(m["sgd/objective"].reshape(-1, len(m["k"])), axis=0)
    np.testing.assert_allclose([h["sgd/objective_median"] for h in hist], med, rtol=1e-6)
    # one series per step scale, named to group in wandb's panels; k the x-axis, tau declared
    per_scale = np.median(m["heavy_ball/objective"][:, :, 0].reshape(-1, len(m["k"])), axis=0)
    hb = [h for h in rec["history"] if "heavy_ball/s=0.5/objective_median" in h]
    np.testing.assert_allclose([h["heavy_ball/s=0.5/objective_median"] for h in hb], per_scale, rtol=1e-6)
    assert rec["metrics"].get("sgd/*") == "k" and "sgd/tau" in rec["metrics"]

    # the flow diagnostics as tables (wandb can overlay them across the runs of a group)
    tables = {k[: -len("/_type")] for h in rec["history"] for k, v in h.items()
              if k.endswith("/_type") and v == "table-file"}
    assert {"sgd/flow/apt", "heavy_ball/flow/apt", "heavy_ball/flow/lyapunov"} <= tables
    table_files = {f for a in rec["artifacts"] if a["type"] == "run_table" for f in a["files"]}
    assert {"sgd/flow/apt.table.json", "heavy_ball/flow/lyapunov.table.json"} <= table_files

    # the resolved config: filters and parallel coordinates work on these
    assert rec["config"]["schedule"]["p"] == 0.75 and rec["config"]["seeds"] == 8
    assert rec["config"]["problem"]["_target_"] == "nsopt.problems.ring"

    # the scalars a sweep compares
    s = rec["summary"]
    for alg in ("sgd", "heavy_ball"):
        assert s[f"{alg}/final_objective_median"] == summary["algorithms"][alg]["final_objective"]["median"]
        assert s[f"{alg}/diverged"] == 0
        assert s[f"{alg}/apt_last_median"] == summary["algorithms"][alg]["flow"]["apt_last_median"]
    assert "total_s" in s and "sgd/s=0.5/final_objective_median" in s

    # the run folder's results travel with the run
    arts = [a for a in rec["artifacts"] if a["type"] == "run-results"]
    assert len(arts) == 1
    assert {"metrics.npz", "summary.json", "config.yaml"} <= set(arts[0]["files"])
