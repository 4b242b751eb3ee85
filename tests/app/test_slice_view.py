"""OrthoSliceView: where a view opens (on the sample) and its empty state."""

from __future__ import annotations

import numpy as np
import pytest

from app.widgets.slice_view import OrthoSliceView, sample_voxel
from _layout_counter import layouts_during


def _blob(shape, centre, radius, value=0.04, background=1.337):
    z, y, x = np.indices(shape)
    r2 = sum((a - c) ** 2 for a, c in zip((z, y, x), centre))
    return np.where(r2 <= radius ** 2, background + value, background).astype(np.float32)


def test_sample_voxel_is_the_largest_object_not_the_centre():
    vol = _blob((16, 40, 40), (5, 8, 30), 4)
    vol = np.maximum(vol, _blob((16, 40, 40), (9, 30, 8), 2))  # a smaller object elsewhere
    rng = np.random.default_rng(0)
    vol += rng.normal(0, 0.001, vol.shape).astype(np.float32)  # noise spikes are not objects
    assert sample_voxel(vol) == (5, 8, 30)


def test_sample_voxel_of_a_ring_lies_in_the_ring_and_of_a_flat_volume_at_the_centre():
    z, y, x = np.indices((8, 33, 33))
    rho = np.hypot(y - 16, x - 16)
    ring = np.where((rho > 8) & (rho < 12), 1.40, 1.337).astype(np.float32)
    v = sample_voxel(ring)
    assert ring[v] == pytest.approx(1.40)  # its centroid (the hole) is not in it
    assert sample_voxel(np.full((6, 10, 12), 1.337, np.float32)) == (3, 5, 6)
    dn = np.zeros((10, 20, 20), np.float32)
    dn[2:5, 3:7, 12:17] = -0.05  # Δn may be negative: the contrast is |v − background|
    assert dn[sample_voxel(dn)] == pytest.approx(-0.05)


def test_views_open_on_the_sample_and_keep_the_crosshair_for_the_same_shape(qtbot):
    view = OrthoSliceView()
    qtbot.addWidget(view)
    for plot in view.plots.values():
        assert view.volume is None and not plot.getAxis("bottom").autoSIPrefix
    vol = _blob((12, 30, 30), (3, 22, 6), 3)
    view.set_volume(vol, (0.2, 0.1, 0.1), medium_index=1.337)
    assert view.crosshair == (3, 22, 6)
    view.set_crosshair(6, 15, 15)
    view.set_volume(vol + 0.001, (0.2, 0.1, 0.1), medium_index=1.337)  # e.g. raw → TV: kept
    assert view.crosshair == (6, 15, 15)
    view.go_to_sample()
    assert view.crosshair == (3, 22, 6)


def test_a_short_line_profile_reads_in_micrometres(qtbot):
    """No "mµm" under a line profile shorter than 1 µm (issue #17)."""
    from app.widgets.plots import LineProfilePlot

    p = LineProfilePlot()
    qtbot.addWidget(p)
    p.resize(300, 200)
    p.show()
    x = np.linspace(0.0, 0.6, 13)
    p.set_profiles(x, {"raw": 1.337 + 0.01 * np.sin(x)})
    qtbot.wait(50)
    label = p.getPlotItem().getAxis("bottom").labelString()
    assert "(µm)" in label, label


def test_a_flat_volume_in_a_small_view_settles(qtbot):
    """Aspect-locked plots whose axis labels change width with the range re-laid themselves out
    without end for a flat volume (16 × 64² voxels: hundreds of layouts a second)."""
    view = OrthoSliceView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(1)
    view.set_volume((1.337 + 0.01 * rng.random((16, 64, 64))).astype(np.float32), (0.1, 0.1, 0.1))
    plots = list(view.plots.values())
    for width, height in ((448, 580), (330, 520), (250, 470)):
        view.resize(width, height)
        view.show()
        qtbot.wait(300)  # settle after the resize
        n = layouts_during(qtbot, plots, 700)
        assert n <= 6, f"{n} layouts of the slice plots at rest ({width}×{height} px)"
