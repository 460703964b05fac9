"""Structured configs: from a composed Hydra config to checked objects of the public API.

Every field is checked before any work (no compilation): top-level sizes and the
``flow``/``logger`` groups by the dataclasses below, the ``_target_`` groups
(``problem``, ``schedule``, ``algorithm``, ``init``) by instantiating them, so the
ranges are the API constructors' own (:mod:`nsopt.validate`), written once.
Unknown keys are rejected everywhere (``+foo=1``, ``+schedul.a=1``), under
``experiment=`` too.  Every error is one line::

    <config path>=<value> is not allowed; <what is allowed>
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from nsopt import validate

__all__ = ["ConfigError", "JobConfig", "FlowConfig", "LoggerConfig", "MainJob", "PresetJob",
           "PRECISIONS", "LOGGERS", "WANDB_MODES", "build_main", "build_preset", "check_memory",
           "from_dataclass", "instantiate"]

PRECISIONS = ("float32", "float64")
LOGGERS = ("none", "wandb")
WANDB_MODES = ("auto", "online", "offline", "disabled")
TARGET_GROUPS = ("problem", "schedule", "algorithm", "init")
MAIN_GROUPS = TARGET_GROUPS + ("flow",)


class ConfigError(ValueError):
    """A configuration value is not allowed; the message says which and what is."""


def _bad(path: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(str(validate.BadValue(path, value, allowed)))


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(path, value, "it must be true or false")
    return value


def _unknown_keys(path: str, keys: Sequence[str], allowed: Sequence[str]) -> None:
    for k in keys:
        if k not in allowed:
            where = f"{path}.{k}" if path else k
            near = difflib.get_close_matches(k, list(allowed), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{where} is not a known key{hint}; allowed keys: {sorted(allowed)}")


def from_dataclass(cls: type, node: Mapping[str, Any] | None, path: str) -> Any:
    """``cls(**node)`` with unknown keys rejected and field errors prefixed by ``path``."""
    node = dict(node or {})
    _unknown_keys(path, list(node), [f.name for f in dataclasses.fields(cls)])
    try:
        return cls(**node)
    except validate.BadValue as e:
        raise ConfigError(str(e.prefixed(path))) from None


# -- top level and plain groups -----------------------------------------------------------------
@dataclass(frozen=True)
class JobConfig:
    """Top-level fields of ``conf/config.yaml`` (the main job's sizes and switches)."""

    seed: int = 0
    seeds: int = 16
    inits: int = 4
    scales: Any = (1.0,)
    num_steps: int = 5000
    record_every: int = 10
    precision: str = "float32"
    figures: bool = True
    progress: bool = True
    resume: bool = True
    smoke: bool = False
    run_dir: str | None = None
    compilation_cache: str | bool | None = None

    def __post_init__(self):
        validate.integer("seed", self.seed, 0, 2**32 - 1)
        validate.positive_int("seeds", self.seeds)
        validate.positive_int("inits", self.inits)
        object.__setattr__(self, "scales", tuple(validate.numbers_list("scales", self.scales, 0.0, open_low=True)))
        n = validate.positive_int("num_steps", self.num_steps)
        r = validate.positive_int("record_every", self.record_every)
        if r > n or n % r:
            raise validate.BadValue("record_every", r, f"it must divide num_steps={n}")
        validate.choice("precision", self.precision, PRECISIONS)
        for name in ("figures", "progress", "resume", "smoke"):
            if not isinstance(getattr(self, name), bool):
                raise validate.BadValue(name, getattr(self, name), "it must be true or false")
        if self.run_dir is not None and not isinstance(self.run_dir, str):
            raise validate.BadValue("run_dir", self.run_dir, "it must be a path or null")


@dataclass(frozen=True)
class FlowConfig:
    """``flow`` group: compare the iterates with the flow of the differential inclusion
    (:func:`nsopt.flow.diagnose`)."""

    enabled: bool = True
    T: float = 1.0
    num_times: int | None = None
    dt: float | None = None
    steps: int = 1024
    method: str = "heun"
    max_runs: int = 16
    rtol: float = 0.1
    max_steps: int | None = None

    def __post_init__(self):
        from nsopt.flow.integrate import METHODS

        if not isinstance(self.enabled, bool):
            raise validate.BadValue("enabled", self.enabled, "it must be true or false")
        T = validate.number("T", self.T, low=0.0, open_low=True)
        if self.num_times is not None:
            validate.positive_int("num_times", self.num_times)
        if self.dt is not None:
            validate.number("dt", self.dt, 0.0, T, open_low=True)
        validate.positive_int("steps", self.steps)
        validate.choice("method", self.method, sorted(METHODS))
        validate.positive_int("max_runs", self.max_runs)
        validate.number("rtol", self.rtol, low=0.0, open_low=True)
        if self.max_steps is not None:
            validate.positive_int("max_steps", self.max_steps)


@dataclass(frozen=True)
class LoggerConfig:
    """``logger`` group: ``none``, or ``wandb`` (offline unless an API key is configured)."""

    name: str = "none"
    project: str = "nsopt"
    entity: str | None = None
    mode: str = "auto"
    group: str | None = None
    tags: Any = ()
    init_timeout: float = 10.0

    def __post_init__(self):
        validate.choice("name", self.name, LOGGERS)
        validate.choice("mode", self.mode, WANDB_MODES)
        validate.number("init_timeout", self.init_timeout, low=0.0, open_low=True)
        if isinstance(self.tags, str) or not all(isinstance(t, str) for t in self.tags):
            raise validate.BadValue("tags", self.tags, "it must be a list of strings")


# -- _target_ groups ----------------------------------------------------------------------------
def _locate(path: str, target: Any) -> Callable:
    from hydra.utils import get_method

    if not isinstance(target, str):
        raise _bad(f"{path}._target_", target, "it must be a dotted path to a callable")
    try:
        return get_method(target)
    except Exception as e:  # noqa: BLE001 - Hydra raises several types; one message for all
        raise ConfigError(f"{path}._target_={target!r} cannot be imported ({e}); it must be a dotted "
                          "path to a callable (a module on PYTHONPATH, e.g. mymodule.make_problem)") from None


def instantiate(node: Mapping[str, Any], path: str, *args: Any) -> Any:
    """Call ``node["_target_"](*args, **params)``: unknown parameters, bad values and nested
    ``_target_`` nodes are checked, errors name ``path``."""
    node = dict(node)
    if "_target_" not in node:
        raise ConfigError(f"{path} has no _target_; it must name the callable that builds it")
    fn = _locate(path, node.pop("_target_"))
    params = {k: (instantiate(v, f"{path}.{k}") if isinstance(v, Mapping) and "_target_" in v else v)
              for k, v in node.items()}
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        names = [n for n, p in sig.parameters.items()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)][len(args):]
        _unknown_keys(path, list(params), names)
    try:
        return fn(*args, **params)
    except validate.BadValue as e:
        raise ConfigError(str(e.prefixed(path))) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None


_GROUPS = MAIN_GROUPS + ("logger", "experiment", "sweep")


def _top(plain: Mapping[str, Any]) -> JobConfig:
    """The top-level fields; an unknown top-level key is reported with the groups among the allowed."""
    top = {k: v for k, v in plain.items() if k not in _GROUPS}
    _unknown_keys("", list(top), [f.name for f in dataclasses.fields(JobConfig)] + list(_GROUPS))
    return from_dataclass(JobConfig, top, "")


@dataclass(frozen=True)
class MainJob:
    """Everything the main job needs, built and checked from the config."""

    config: JobConfig
    problem: Any
    schedule: Callable
    algorithms: dict[str, Any]
    init: Any
    flow: FlowConfig
    logger: LoggerConfig
    plain: dict[str, Any] = field(repr=False, default_factory=dict)


def build_main(plain: Mapping[str, Any]) -> MainJob:
    """Check every field of a resolved main-job config and build its objects."""
    job = _top(plain)
    flow = from_dataclass(FlowConfig, plain.get("flow"), "flow")
    logger = from_dataclass(LoggerConfig, plain.get("logger"), "logger")
    for group in TARGET_GROUPS:
        if not isinstance(plain.get(group), Mapping):
            raise ConfigError(f"{group} is missing; choose a config ({group}=<name>) or give {group}._target_")
    schedule = instantiate(plain["schedule"], "schedule")
    problem = instantiate(plain["problem"], "problem")
    _check_problem(problem)
    init = instantiate(plain["init"], "init")
    algorithms = {}
    for name, node in dict(plain["algorithm"]).items():
        if not isinstance(node, Mapping):
            raise _bad(f"algorithm.{name}", node, "each entry of algorithm must be a node with _target_")
        algorithms[name] = instantiate(node, f"algorithm.{name}", schedule)
    if not algorithms:
        raise ConfigError("algorithm is empty; choose algorithm=sgd, heavy_ball or sgd_and_heavy_ball")
    return MainJob(job, problem, schedule, algorithms, init, flow, logger, dict(plain))


def _check_problem(problem: Any) -> None:
    from nsopt.problems.base import Problem, ProblemError, check_problem

    if not isinstance(problem, Problem):
        raise ConfigError(f"problem._target_ returned {type(problem).__name__}, not an nsopt Problem "
                          "(subclass nsopt.problems.Problem: loss, sampler, F, init, name, dim)")
    try:
        check_problem(problem)
    except ProblemError as e:
        raise ConfigError(str(e)) from None


# -- presets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PresetJob:
    config: JobConfig
    name: str
    precision: str
    params: Any
    logger: LoggerConfig


#: Main-job keys that have no effect under ``experiment=`` (an override of one is an error).
_MAIN_ONLY = ("seeds", "inits", "scales", "num_steps", "record_every") + MAIN_GROUPS


def build_preset(plain: Mapping[str, Any], overrides: Sequence[str] = ()) -> PresetJob:
    """Check a preset job: the experiment node becomes the preset's ``Params`` (smoke merged)."""
    from nsopt import presets

    node = dict(plain["experiment"])
    try:
        preset = presets.get(node.get("name"))
    except validate.BadValue as e:
        raise ConfigError(str(e)) from None
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0].split(".", 1)[0]
        if key in _MAIN_ONLY:
            fields = sorted(f.name for f in dataclasses.fields(preset.params))
            raise ConfigError(f"{o.lstrip('+~')} has no effect under experiment={preset.name}; its sizes are "
                              f"experiment.<field>, one of {fields}")
    job = _top(plain)
    logger = from_dataclass(LoggerConfig, plain.get("logger"), "logger")
    precision = validate.choice("experiment.precision", node.pop("precision", "float32"), PRECISIONS)
    node.pop("name")
    smoke = node.pop("smoke", None) or {}
    _unknown_keys("experiment.smoke", list(smoke), list(node))
    if job.smoke:
        node.update(smoke)
    params = from_dataclass(preset.params, node, "experiment")
    return PresetJob(job, preset.name, precision, params, logger)


# -- resources ----------------------------------------------------------------------------------
def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(job: MainJob, fraction: float = 0.5) -> int:
    """Estimate the batch's memory and refuse it when above ``fraction`` of the available memory.

    Records x runs x (dimension of w, plus heavy ball's y) x dtype, for each algorithm, plus
    the flow's windows; returns the estimate in bytes.
    """
    c = job.config
    dim = int(job.problem.dim)
    itemsize = 8 if c.precision == "float64" else 4
    runs = c.seeds * c.inits * len(c.scales)
    records = c.num_steps // c.record_every + 1
    per_alg = runs * records * (2 * dim + 4) * itemsize
    total = per_alg * len(job.algorithms)
    if job.flow.enabled:
        flow_runs = min(c.seeds, job.flow.max_runs) * c.inits * len(c.scales)
        steps = max(1, int(math.ceil(job.flow.T / (job.flow.dt or job.flow.T / job.flow.steps))))
        windows = job.flow.num_times or 64
        total += flow_runs * windows * (steps + 1) * dim * itemsize
    avail = _available_memory()
    if avail is not None and total > fraction * avail:
        raise ConfigError(
            f"the batch needs about {total / 2**30:.2f} GiB ({runs} runs x {records} records x dim {dim}, "
            f"{len(job.algorithms)} algorithm(s)) but only {avail / 2**30:.2f} GiB is available; reduce "
            "seeds, inits, len(scales) or num_steps, or raise record_every")
    return total
