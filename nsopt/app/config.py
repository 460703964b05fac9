"""From a Hydra/OmegaConf config to objects of the public API, with validation.

Every error names the config field, the bad value and what is allowed.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from nsopt import problems as problems_mod
from nsopt import schedules
from nsopt.algorithms import Algorithm, heavy_ball, proportional, sgd

__all__ = ["ConfigError", "ALGORITHMS", "INITS", "PRECISIONS", "SCHEDULES", "validate",
           "build_problem", "build_schedule", "build_algorithms", "build_inits", "run_keys"]

ALGORITHMS = ("sgd", "heavy_ball", "sgd_and_heavy_ball")
SCHEDULES = ("constant", "inverse_power")
INITS = ("default", "gaussian", "uniform")
PRECISIONS = ("float32", "float64")
BETA_KINDS = ("proportional", "constant")


class ConfigError(ValueError):
    """A configuration value is not allowed; the message says which and what is."""


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{field}={value!r} is not allowed; choose one of {list(allowed)}")
    return value


def _positive_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{field}={value!r} is not allowed; it must be an integer >= 1")
    return value


def _positive_float(field: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field}={value!r} is not allowed; it must be a number > 0") from None
    if isinstance(value, bool) or not (math.isfinite(v) and v > 0):
        raise ConfigError(f"{field}={value!r} is not allowed; it must be a finite number > 0")
    return v


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the top-level fields of the main job's config."""
    _positive_int("seeds", cfg["seeds"])
    _positive_int("inits", cfg["inits"])
    if not isinstance(cfg["seed"], int) or isinstance(cfg["seed"], bool) or cfg["seed"] < 0:
        raise ConfigError(f"seed={cfg['seed']!r} is not allowed; it must be an integer >= 0")
    scales = cfg["scales"]
    if isinstance(scales, (int, float)):
        scales = [scales]
    if not scales:
        raise ConfigError("scales=[] is not allowed; give at least one step scale > 0")
    for i, s in enumerate(scales):
        _positive_float(f"scales[{i}]", s)
    n = _positive_int("num_steps", cfg["num_steps"])
    r = _positive_int("record_every", cfg["record_every"])
    if r > n or n % r:
        raise ConfigError(
            f"record_every={r} is not allowed with num_steps={n}; it must divide num_steps"
        )
    _choice("precision", cfg["precision"], PRECISIONS)
    _choice("algorithm.name", cfg["algorithm"]["name"], ALGORITHMS)
    _choice("schedule.name", cfg["schedule"]["name"], SCHEDULES)
    _choice("init.name", cfg["init"]["name"], INITS)


def scales_of(cfg: Mapping[str, Any]) -> list[float]:
    s = cfg["scales"]
    return [float(x) for x in ([s] if isinstance(s, (int, float)) else s)]


def build_problem(cfg_p: Mapping[str, Any]) -> problems_mod.Problem:
    params = {k: v for k, v in dict(cfg_p).items() if k != "name"}
    name = cfg_p["name"]
    if name not in problems_mod.REGISTRY:
        raise ConfigError(f"problem.name={name!r} is not allowed; choose one of {sorted(problems_mod.REGISTRY)}")
    try:
        return problems_mod.make(name, **params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"problem={name}: {e}") from None


def build_schedule(cfg_s: Mapping[str, Any]) -> schedules.Schedule:
    name = _choice("schedule.name", cfg_s["name"], SCHEDULES)
    if name == "constant":
        return schedules.constant(_positive_float("schedule.a", cfg_s["a"]))
    a = _positive_float("schedule.a", cfg_s["a"])
    b = _positive_float("schedule.b", cfg_s["b"])
    p = float(cfg_s["p"])
    if not (0 < p <= 1):
        raise ConfigError(f"schedule.p={cfg_s['p']!r} is not allowed; it must be in (0, 1] "
                          "(the theory needs (1/2, 1])")
    return schedules.inverse_power(a, b, p)


def build_algorithms(cfg_a: Mapping[str, Any], alpha: schedules.Schedule) -> dict[str, Algorithm]:
    """``{"sgd": ..., "heavy_ball": ...}`` (one or both, per ``algorithm.name``)."""
    name = _choice("algorithm.name", cfg_a["name"], ALGORITHMS)
    out: dict[str, Algorithm] = {}
    if name in ("sgd", "sgd_and_heavy_ball"):
        out["sgd"] = sgd(alpha)
    if name in ("heavy_ball", "sgd_and_heavy_ball"):
        beta_cfg = cfg_a["beta"]
        kind = _choice("algorithm.beta.kind", beta_cfg["kind"], BETA_KINDS)
        value = _positive_float("algorithm.beta.value", beta_cfg["value"])
        if kind == "constant":
            if value > 1:
                raise ConfigError(f"algorithm.beta.value={value!r} is not allowed; a constant beta must be in (0, 1]")
            beta = value
        else:
            beta = proportional(value, alpha)
            b0 = float(beta(jnp.asarray(0)))
            if b0 > 1:
                raise ConfigError(
                    f"algorithm.beta.value={value!r} gives beta_0 = r * alpha_0 = {b0:.4g} > 1; "
                    "allowed: r <= 1 / alpha_0 (beta_k must stay in (0, 1])")
        init_m = _choice("algorithm.init_momentum", cfg_a.get("init_momentum", "oracle"),
                         ("oracle", "scaled", "zero"))
        out["heavy_ball"] = heavy_ball(alpha, beta, init_momentum=init_m)
    return out


def run_keys(seed: int, num: int) -> jax.Array:
    """Run key ``i`` is ``fold_in(fold_in(key(seed), 0), i)``: independent of the batch size."""
    root = jax.random.fold_in(jax.random.key(seed), 0)
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(num, dtype=jnp.uint32))


def build_inits(cfg_i: Mapping[str, Any], problem: problems_mod.Problem, seed: int, num: int) -> Any:
    """``num`` initializations stacked on a leading axis; init ``j`` uses key ``fold_in(fold_in(key(seed), 1), j)``."""
    name = _choice("init.name", cfg_i["name"], INITS)
    root = jax.random.fold_in(jax.random.key(seed), 1)
    keys = jax.vmap(lambda j: jax.random.fold_in(root, j))(jnp.arange(num, dtype=jnp.uint32))
    if name == "default":
        return jax.vmap(problem.init)(keys)
    shapes = jax.eval_shape(problem.init, keys[0])
    if name == "gaussian":
        std = float(cfg_i["std"])
        if not (math.isfinite(std) and std >= 0):
            raise ConfigError(f"init.std={cfg_i['std']!r} is not allowed; it must be a number >= 0")
        mean = float(cfg_i["mean"])

        def draw(key):
            leaves, tree = jax.tree.flatten(shapes)
            ks = jax.random.split(key, len(leaves))
            return jax.tree.unflatten(
                tree, [mean + std * jax.random.normal(k, s.shape, s.dtype) for k, s in zip(ks, leaves)])
    else:
        low, high = float(cfg_i["low"]), float(cfg_i["high"])
        if not low < high:
            raise ConfigError(f"init.low={low!r}, init.high={high!r} are not allowed; need low < high")

        def draw(key):
            leaves, tree = jax.tree.flatten(shapes)
            ks = jax.random.split(key, len(leaves))
            return jax.tree.unflatten(
                tree, [jax.random.uniform(k, s.shape, s.dtype, low, high) for k, s in zip(ks, leaves)])

    return jax.vmap(draw)(keys)
