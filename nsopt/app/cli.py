"""``python -m nsopt`` / ``nsopt``: the Hydra entry point of the main job and the presets.

Thin by design.  One job's lifecycle, the same for the main job and the presets:

1. resume (multirun): a folder whose results verify for this exact config is skipped;
2. check every config field (:mod:`nsopt.app.config`) before any work: an error is one
   line and exit status 2 for a single run, ``failed.json`` for a sweep job;
3. :meth:`RunFolder.begin` (results of another config set aside, old summary invalidated);
4. run, write results, then ``summary.json`` last with the hashes of every file;
5. a failure writes ``failed.json``; in a sweep the other jobs go on.

The configs are found next to the installed package (``nsopt/conf`` in a wheel) or in
the repository's top-level ``conf/`` (editable install), from any working directory.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from nsopt.app.run_folder import RunFolder

__all__ = ["main", "config_dir", "task", "run_config"]

log = logging.getLogger("nsopt")
# conf/hydra/launcher/submitit_local.yaml replaces the plugin's config of that name on purpose
warnings.filterwarnings("ignore", message=r"[\s\S]*validated against ConfigStore schema", category=UserWarning)


def config_dir() -> str:
    """Absolute path of the Hydra config folder (packaged copy first, then the repo's ``conf/``)."""
    pkg = Path(__file__).resolve().parent.parent
    for cand in (pkg / "conf", pkg.parent / "conf"):
        if (cand / "config.yaml").is_file():
            return str(cand)
    raise FileNotFoundError(f"nsopt's Hydra configs not found in {pkg / 'conf'} or {pkg.parent / 'conf'}")


def _job_info() -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    overrides = [o for o in hc.overrides.task if not o.startswith("hydra")]
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and v is not None}
    return {
        "multirun": multirun,
        "output_dir": Path(hc.runtime.output_dir),
        "overrides": overrides,
        "name": ",".join(overrides) or "defaults",
        "group": Path(hc.sweep.dir).name if multirun else None,
        "tags": [f"{k}:{v}" for k, v in sorted(choices.items())],
        "choices": dict(sorted(choices.items())),
        "num": hc.job.num if multirun else None,
    }


def _precision(plain: dict) -> str:
    """The job's precision (checked first: the job's arrays are built in it)."""
    from nsopt.app.config import PRECISIONS, ConfigError

    exp = plain.get("experiment")
    field, value = (("experiment.precision", exp.get("precision", "float32")) if isinstance(exp, dict)
                    else ("precision", plain.get("precision", "float32")))
    if value not in PRECISIONS:
        raise ConfigError(f"{field}={value!r} is not allowed; choose one of {list(PRECISIONS)}")
    return value


def _build(plain: dict, overrides: list[str]):
    """Check the config and build the job's objects, in the job's precision (restored after)."""
    from nsopt.app.config import build_main, build_preset, check_memory
    from nsopt.app.environment import set_precision

    with set_precision(_precision(plain)):
        return _build_in_precision(plain, overrides, build_main, build_preset, check_memory)


def _build_in_precision(plain, overrides, build_main, build_preset, check_memory):
    if plain.get("experiment"):
        return build_preset(plain, overrides)
    job = build_main(plain)
    check_memory(job)
    return job


def task(cfg: DictConfig) -> dict | None:
    """Run one job (see the module docstring); returns its summary, or ``None`` when it failed."""
    from nsopt.app.config import ConfigError

    logging.getLogger("jax").setLevel(logging.WARNING)
    info = _job_info()
    label = f"job {info['num']} [{info['name']}]" if info["multirun"] else "run"
    folder = RunFolder(cfg.get("run_dir") or info["output_dir"])
    command = "python -m nsopt " + shlex.join(info["overrides"])
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
        yaml = OmegaConf.to_yaml(cfg, resolve=True)
    except Exception as e:  # noqa: BLE001 - an interpolation error is a config error
        return _failed(ConfigError(f"the config cannot be resolved: {e}"), info, label, folder, "")
    if info["multirun"] and plain.get("resume", True) is not False:
        st = folder.state(yaml)
        if st.complete:
            print(f"nsopt: {label} already complete (verified), skipped: {folder.path.resolve()}", flush=True)
            return folder.read_summary()
        if st.state in ("corrupt", "killed", "failed"):
            print(f"nsopt: {label} {st.state} ({st.reason}): rerunning", flush=True)
    try:
        _compilation_cache(plain.get("compilation_cache"))
        job = _build(plain, info["overrides"])
    except ConfigError as e:
        return _failed(e, info, label, folder, yaml, command)
    try:
        diff = folder.config_diff(yaml) if folder.read_config() not in (None, yaml) else []
        moved = folder.begin(yaml, command)
    except OSError as e:
        return _failed(ConfigError(f"run_dir={str(folder.path)!r} cannot be written ({e.strerror or e}); "
                                   "choose a writable run_dir"), info, label, folder, yaml)
    if moved is not None:
        print(f"nsopt: {label}: {folder.path} held results of another config (changed: "
              f"{'; '.join(diff[:6])}); they were moved to {moved}", flush=True)
    t0 = time.perf_counter()
    try:
        summary = _run(job, folder, info, plain)
    except Exception as e:  # noqa: BLE001 - reported; fatal only for a single run
        folder.fail(e, info["overrides"], traceback.format_exc())
        if not info["multirun"]:
            raise
        log.error("%s failed: %s: %s", label, type(e).__name__, e)
        print(f"nsopt: {label} FAILED ({type(e).__name__}: {e}); other jobs continue", flush=True)
        return None
    print(f"nsopt: {label} done in {time.perf_counter() - t0:.1f} s{_headline(summary)}; "
          f"results in {folder.path.resolve()}", flush=True)
    return summary


def run_config(plain: dict, run_dir: str | Path, overrides: list[str] | tuple = ()) -> dict:
    """Run the job of a resolved config (a plain dict) into ``run_dir``, in this process.

    The same checks, run folder and summary as the CLI, without Hydra (tests, notebooks);
    raises :class:`~nsopt.app.config.ConfigError` for a bad value, before any write.
    """
    from omegaconf import OmegaConf as _OC

    job = _build(plain, list(overrides))
    folder = RunFolder(run_dir)
    folder.begin(_OC.to_yaml(_OC.create(plain)), "python -m nsopt " + shlex.join(list(overrides)))
    info = {"multirun": False, "name": "run", "group": None, "tags": [], "overrides": list(overrides)}
    try:
        return _run(job, folder, info, plain)
    except Exception as e:
        folder.fail(e, list(overrides), traceback.format_exc())
        raise


def _compilation_cache(value) -> None:
    """JAX's persistent compilation cache (:mod:`nsopt.app.compilation_cache`), before any compilation."""
    from nsopt.app.compilation_cache import setup
    from nsopt.app.config import ConfigError

    if value is not None and not isinstance(value, (str, bool)) or value is True:
        raise ConfigError(f"compilation_cache={value!r} is not allowed; it must be a folder, null (per-user "
                          "default) or false (off)")
    setup(value)


def _failed(error: Exception, info: dict, label: str, folder, yaml: str, command: str = "") -> None:
    """A config error: one line and exit 2 for a single run; ``failed.json`` for a sweep job."""
    if not info["multirun"]:
        print(f"nsopt: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2)
    for target in (folder, _hydra_folder(info, folder)):
        try:
            if yaml:
                target.begin(yaml, command or "python -m nsopt " + shlex.join(info["overrides"]))
            target.fail(f"ConfigError: {error}", info["overrides"])
            break
        except OSError:
            continue
    print(f"nsopt: {label} FAILED (configuration error: {error}); other jobs continue", flush=True)
    return None


def _hydra_folder(info: dict, folder):
    return RunFolder(info["output_dir"]) if Path(info["output_dir"]) != folder.path else folder


def _run(job, folder, info: dict, plain: dict) -> dict:
    from nsopt.app.config import PresetJob
    from nsopt.app.dashboard import sweep_scalars
    from nsopt.app.environment import environment, set_precision
    from nsopt.app.loggers import make_logger

    t0 = time.perf_counter()
    logger = make_logger(job.logger, run_name=info["name"] if info["multirun"] else None,
                         group=info["group"], tags=info["tags"] if info["multirun"] else [])
    with set_precision(_precision(plain)):
        logger.start({**plain, "choices": dict(info.get("choices") or {}),
                      "overrides": list(info.get("overrides") or [])}, folder.path)
        exit_code = 1
        try:
            if isinstance(job, PresetJob):
                from nsopt.app.preset_job import run_preset_job

                summary = run_preset_job(job, folder, logger)
            else:
                from nsopt.app.main_job import run_main

                summary = run_main(job, folder, logger)
            summary["total_s"] = time.perf_counter() - t0
            summary["environment"] = environment()
            summary = folder.complete(summary)
            logger.log_summary(sweep_scalars(summary))
            logger.log_artifact("results", [folder.path / f for f in summary["integrity"]["files"]]
                                + [folder.path / RunFolder.SUMMARY])
            exit_code = 0
            return summary
        finally:
            logger.finish(exit_code)


def _headline(summary: dict) -> str:
    if "claims" in summary:
        held = sum(summary["claims"].values())
        return f": {held} of {len(summary['claims'])} claims hold"
    parts = []
    for name, a in (summary.get("algorithms") or {}).items():
        med = a["final_objective"]["median"]
        parts.append(f"{name} final F median {med:.3g}" if med is not None else f"{name} no finite run")
        if a["diverged"]:
            parts[-1] += f" ({a['diverged']} of {a['runs']} diverged)"
    return ": " + ", ".join(parts) if parts else ""


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    task(cfg)


#: nsopt's Hydra launchers live in ``plugins/hydra_plugins/nsopt_launcher`` (Hydra instantiates
#: launchers only from the ``hydra_plugins`` namespace package): this folder joins the path of the
#: process and of the jobs it starts (submitit unpickles the launcher in each job).
PLUGINS = str(Path(__file__).resolve().parent / "plugins")


def _register_plugins() -> None:
    if PLUGINS not in sys.path:
        sys.path.append(PLUGINS)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if PLUGINS not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, PLUGINS])


def main() -> None:
    """The console entry: ``-m``/``--multirun`` is accepted anywhere on the line (Hydra wants it
    before the overrides), nsopt's launchers are registered, then Hydra takes over."""
    _register_plugins()
    flags = [a for a in sys.argv[1:] if a in ("-m", "--multirun")]
    if flags:
        sys.argv = [sys.argv[0], "-m", *[a for a in sys.argv[1:] if a not in ("-m", "--multirun")]]
    _hydra_main()


if __name__ == "__main__":
    main()
