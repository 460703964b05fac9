"""Figures take data and return a Figure with what they claim to draw (no files, no CLI)."""

import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

import nsopt
import nsopt.flow
from nsopt.problems import ring


@pytest.fixture(scope="module")
def data():
    p = ring(noise=0.3)
    alg = nsopt.sgd(nsopt.schedules.inverse_power(0.3, 10.0, 0.75))
    w0 = jnp.array([[1.5, 0.3], [0.1, -0.4]])
    batch = nsopt.run_batch(alg, p.oracle(), p.sampler, w0, 2, 400, 4)
    return p, w0, batch


def test_phase_portrait(data):
    p, w0, batch = data
    flows = nsopt.flow.flow(p.field, w0, 0.01, 100, batch_axes=1).w
    fig = nsopt.flow.phase_portrait(p.field, batch.w, flows=flows, labels=["a", "b", "c", "d"])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [ln.get_label() for ln in ax.lines]
    assert [lb for lb in labels if lb in "abcd"] == ["a", "b", "c", "d"]
    # 2 dashed flows and the legend's proxy for them
    assert sum(1 for ln in ax.lines if ln.get_linestyle() == "--") == 2 + 1
    assert {"start $w_0$", "end $w_K$", "flow"} <= set(labels)
    x0, x1 = ax.get_xlim()
    w = np.asarray(batch.w)
    assert x0 <= w[..., 0].min() and x1 >= w[..., 0].max()
    with pytest.raises(ValueError, match=r"shape \(R, 2\)"):
        nsopt.flow.phase_portrait(p.field, np.zeros((3, 5, 3)))
    with pytest.raises(ValueError, match="bounds must satisfy"):
        nsopt.flow.phase_portrait(p.field, bounds=(1.0, 0.0, 0.0, 1.0))


def test_streamlines_follow_the_flow_and_stop_on_the_kink(data):
    """Ring: -field = -2 sign(|w|^2 - 1) w points to the unit circle from both sides, so every
    streamline moves monotonically towards |w| = 1 and the lines that stop inside the box stop on it."""
    from nsopt.flow.figures import _streamlines

    p = data[0]
    box = (-2.0, 2.0, -1.5, 1.5)
    lines, stops = _streamlines(p.field, box, 41)
    h = 4.0 / 150
    assert len(lines) >= 100 and len(stops) >= 50
    for line in lines:
        gap = np.abs(np.linalg.norm(line, axis=1) - 1.0)
        assert np.all(np.diff(gap) <= 1e-9), "a streamline moved away from the circle"
    assert np.all(np.abs(np.linalg.norm(stops, axis=1) - 1.0) <= h), "a streamline stopped off the kink"


def test_apt_figure_log_scale_and_bands(data):
    p, _, batch = data
    d = nsopt.flow.apt_distance(batch, p.field, 0.5, dt=0.05, num_times=10)
    t = nsopt.flow.default_times(batch, 0.5, 10)
    single = (np.asarray(t[0, 0, 0]), np.asarray(d[0, 0, 0]))
    fig = nsopt.flow.apt_figure({"batch": (t, d), "one run": single}, T=0.5)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [ln.get_label() for ln in ax.lines] == ["batch (median, n=4)", "one run"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), single[1])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.median(np.asarray(d).reshape(4, 10), 0))
    assert len(ax.collections) == 1  # the band of the batch only
    with pytest.raises(ValueError, match="curves is empty"):
        nsopt.flow.apt_figure({})


def test_lyapunov_figure(data):
    p, _, batch = data
    E = nsopt.flow.lyapunov(batch, p.F)
    fig = nsopt.flow.lyapunov_figure({"sgd": (batch.tau, E)}, shift_to_min=True, logy=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog"
    assert np.nanmin(ax.lines[0].get_ydata()) >= 0
    with pytest.raises(ValueError, match="must match times"):
        nsopt.flow.lyapunov_figure({"bad": (batch.tau[..., :3], E)})


def test_on_points_compiles_once_per_structure():
    """Problems that differ only in array values share one program; a static difference does not."""
    from jax import monitoring

    from nsopt.flow.figures import on_points

    compiles = []

    def listen(name, secs, **kw):
        if name.endswith("backend_compile_duration"):
            compiles.append(name)

    monitoring.register_event_duration_secs_listener(listen)
    try:
        _check_on_points(on_points, compiles)
    finally:
        monitoring.unregister_event_duration_listener(listen)


def _check_on_points(on_points, compiles):
    pts = np.stack(np.meshgrid(np.linspace(-2, 2, 7), np.linspace(-1, 1, 5)), -1)
    a = on_points(ring(noise=0.3, kink=0.0).F, pts)
    n = len(compiles)
    b = on_points(ring(noise=0.7, kink=0.5).F, pts)  # other array values: the same program
    assert len(compiles) == n
    c = on_points(ring(init_radius=3.0).F, pts)  # another static field: a new program
    assert len(compiles) > n
    assert a.shape == pts.shape[:-1]
    r2 = (pts**2).sum(-1)
    np.testing.assert_allclose(a, np.abs(r2 - 1), rtol=1e-12)  # F = | ||w||^2 - 1 |, closed form
    np.testing.assert_allclose(b, np.abs(r2 - 1), rtol=1e-12)  # noise and kink do not change F
    np.testing.assert_allclose(c, np.abs(r2 - 1), rtol=1e-12)
    field = on_points(ring(kink=0.5).field, pts)  # outputs keep their trailing axis; abs'(0) = kink
    slope = np.where(r2 == 1, 0.5, np.sign(r2 - 1))
    np.testing.assert_allclose(field, 2 * slope[..., None] * pts, rtol=1e-12)
