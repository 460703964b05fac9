"""Any optax schedule from the config (``schedule._target_=optax...``); the l^2 \\ l^1 check warns
where the theory does not apply, as for inverse_power outside (1/2, 1]."""

import sys
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nsopt.flow import check_schedule
from nsopt.schedules import TheoryWarning

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))


def test_optax_schedule_through_the_config():
    from app_helpers import cfg_of

    from nsopt.app.config import build_main

    job = build_main(cfg_of(["problem=lad", "schedule._target_=optax.cosine_decay_schedule", "~schedule.a",
                             "~schedule.b", "~schedule.p", "+schedule.init_value=0.1", "+schedule.decay_steps=100"]))
    k = np.arange(0, 150, 7)
    ref = 0.05 * (1 + np.cos(np.pi * np.minimum(k, 100) / 100))          # optax's cosine decay, closed form
    np.testing.assert_allclose(np.asarray(job.schedule(jnp.asarray(k))), ref, rtol=1e-6, atol=1e-12)
    assert set(job.algorithms) == {"sgd", "heavy_ball"}


@pytest.mark.parametrize("schedule,ok", [
    (optax.cosine_decay_schedule(0.1, 1000), False),               # ends constant at 0: sum alpha < inf
    (optax.constant_schedule(0.01), False),                        # sum alpha^2 = inf
    (optax.polynomial_schedule(0.1, 0.0, 1.0, 1000), False),       # reaches 0: sum alpha < inf
])
def test_check_schedule_warns_for_optax_schedules_outside_the_theory(schedule, ok):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert check_schedule(schedule) is ok
    assert any(issubclass(x.category, TheoryWarning) for x in w) is not ok


def test_check_schedule_accepts_a_callable_in_l2_minus_l1():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_schedule(lambda k: 0.5 / (k + 10.0) ** 0.75) is True
