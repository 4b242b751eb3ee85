"""Birefringence tab: open a pipeline result of a tiny simulated weak-LC droplet, slices, director
lines, readout, the VTK 3-D view (offscreen OSMesa) and PNG export."""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.birefringence.director import director_lines


@pytest.fixture(scope="module")
def droplet_result(tmp_path_factory) -> Path:
    """A result file written by the pipeline (--birefringence) for a tiny weak-LC droplet (~8 s)."""
    from engine.pipeline.process import ProcessOptions, process_measurement
    from engine.simulate.demo import DemoConfig, write_demo
    from engine.simulate.holograms import Setup

    root = tmp_path_factory.mktemp("biref")
    cfg = DemoConfig(Setup(image_shape=(48, 48), pixel_size_um=0.1, medium_index=1.46, na_condenser=1.0,
                           n_angles=9, pattern="ring"),
                     depth_um=3.2, phantom_kwargs={"radius_um": 1.2, "n_o": 1.52, "n_e": 1.57},
                     defect_rate=0.0, imperfection_rate=0.0, near_edge_probability=0.0)
    folder = write_demo(root / "in", kind="lc-droplets", count=1, seed=3, config=cfg, device="cpu")[0]
    out = root / "out" / f"{folder.name}.odt.h5"
    process_measurement(folder, out, ProcessOptions(device="cpu", birefringence=True, screen="none",
                                                    birefringence_method="dtt"))
    return out


def _osmesa_available() -> bool:
    return ctypes.util.find_library("OSMesa") is not None


@pytest.fixture
def tab(qtbot, runner, settings):
    from app.tabs.birefringence_tab import BirefringenceTab

    t = BirefringenceTab(runner, settings)
    t.resize(1280, 800)
    qtbot.addWidget(t)
    t.show()
    yield t
    t.volume_view.shutdown()


def _open(qtbot, tab, path: Path):
    from app.jobs import JobState

    with qtbot.waitSignal(tab.loaded, timeout=30000):
        job = tab.open_result(path)
    assert job.state is JobState.FINISHED
    return tab.data


def test_open_result_slices_equal_the_volume_slices(qtbot, tab, droplet_result):
    data = _open(qtbot, tab, droplet_result)
    with h5py.File(droplet_result, "r") as f:
        n_e, n_o = f["birefringence/n_e"][()], f["birefringence/n_o"][()]
        vox = tuple(f["tomogram"].attrs["voxel_size_um"])
        origin = tuple(f["tomogram"].attrs["origin_um"])
    np.testing.assert_array_equal(data.n_e, n_e)
    assert data.voxel_size_um == pytest.approx(vox) and data.origin_um == pytest.approx(origin)
    tab.slice_view.set_crosshair(n_e.shape[0] // 2 + 1, 20, 27)
    z, y, x = tab.slice_view.crosshair
    expected = {"n_e": n_e, "n_o": n_o, "delta_n": n_e - n_o}
    for q, vol in expected.items():
        tab.set_quantity(q)
        assert tab.slices.quantity_combo.currentData() == q
        np.testing.assert_array_equal(tab.slice_view.images["xy"].image, vol[z])
        np.testing.assert_array_equal(tab.slice_view.images["xz"].image, vol[:, y, :])
        np.testing.assert_array_equal(tab.slice_view.images["yz"].image, vol[:, :, x].T)
    assert tab.slice_view.crosshair == (z, y, x)  # switching quantity keeps the crosshair
    assert "TRUTH" not in tab.title_label.text()


def test_director_lines_only_where_delta_n_is_significant_and_in_place(qtbot, tab, droplet_result):
    data = _open(qtbot, tab, droplet_result)
    dn = data.delta_n
    tab.set_quantity("delta_n")
    tab.slices.step_spin.setValue(3)
    tab.slices.min_dn_spin.setValue(0.02)
    zc, yc, xc = np.unravel_index(int(np.argmax(np.abs(dn))), dn.shape)
    tab.slice_view.set_crosshair(zc, yc, xc)
    vox, org = np.array(data.voxel_size_um), np.array(data.origin_um)
    total = 0
    for view, (h, v) in {"xy": ("x", "y"), "xz": ("x", "z"), "yz": ("z", "y")}.items():
        ov = tab.overlays[view]
        seg = ov.segments
        total += len(seg)
        assert ov.colours.shape == (len(seg), 4)
        # colour = on-screen orientation through the engine's cyclic map (y and z grow down/up)
        from app.widgets.director_overlay import screen_angles
        from engine.birefringence.director import cyclic_colours

        inverted = view in ("xy", "yz")
        assert tab.slice_view.plots[view].vb.state["yInverted"] == inverted
        np.testing.assert_allclose(ov.colours, cyclic_colours(screen_angles(seg, inverted)), atol=1e-6)
        centres = seg.mean(axis=1)  # (M, 2) in the view's (h, v) µm
        ax = {"z": 0, "y": 1, "x": 2}
        idx = list(tab.slice_view.crosshair)
        for (ch, cv) in centres:
            idx[ax[h]] = int(round((ch - org[ax[h]]) / vox[ax[h]]))
            idx[ax[v]] = int(round((cv - org[ax[v]]) / vox[ax[v]]))
            # the centre sits on a voxel centre, and that voxel's Δn is significant
            assert abs(ch - (org[ax[h]] + idx[ax[h]] * vox[ax[h]])) < 1e-4
            assert abs(dn[tuple(idx)]) >= 0.02 - 1e-6
        # the same lines as the engine's, in the view's frame (yz: swapped to (z, y))
        plane = {"xy": "xy", "xz": "xz", "yz": "yz"}[view]
        cut = {"xy": 0, "xz": 1, "yz": 2}[view]
        ref = director_lines(data.director, dn, plane, tab.slice_view.crosshair[cut], step=3, min_delta_n=0.02,
                             voxel_size_um=data.voxel_size_um, origin_um=data.origin_um).segments
        if view == "yz":
            ref = ref[..., ::-1]
        np.testing.assert_allclose(seg, ref, atol=1e-6)
    assert total > 0
    # raising the threshold above every |Δn| leaves no line; switching lines off clears them
    tab.slices.min_dn_spin.setValue(float(np.abs(dn).max()) + 0.01)
    assert all(len(ov) == 0 for ov in tab.overlays.values())
    tab.slices.min_dn_spin.setValue(0.02)
    assert len(tab.overlays["xy"]) > 0
    tab.slices.lines_check.setChecked(False)
    assert len(tab.overlays["xy"]) == 0
    # a coarser step gives fewer lines
    tab.slices.lines_check.setChecked(True)
    n3 = len(tab.overlays["xy"])
    tab.slices.step_spin.setValue(6)
    assert 0 < len(tab.overlays["xy"]) < n3


def test_show_volumes_uniform_director_lines(qtbot, tab):
    """A sphere of Δn 0.05 with the director along x: horizontal lines of known length in xy and xz,
    none in yz (the director is normal to it), all inside the sphere."""
    n = 24
    vox = (0.2, 0.1, 0.1)
    z, y, x = np.meshgrid(*[(np.arange(n) - n // 2) * d for d in vox], indexing="ij")
    inside = z ** 2 + y ** 2 + x ** 2 < 0.8 ** 2
    n_o = np.where(inside, 1.50, 1.46).astype(np.float32)
    n_e = np.where(inside, 1.55, 1.46).astype(np.float32)
    director = np.zeros((n, n, n, 3), np.float32)
    director[inside, 2] = 1.0
    with qtbot.waitSignal(tab.loaded, timeout=5000):
        tab.show_volumes(n_e, n_o, director, vox, medium_index=1.46, label="synthetic")
    tab.slices.step_spin.setValue(2)
    tab.slices.min_dn_spin.setValue(0.01)
    assert tab.slice_view.crosshair == (n // 2,) * 3
    for view in ("xy", "xz"):
        seg = tab.overlays[view].segments
        assert len(seg) > 4
        np.testing.assert_allclose(seg[:, 0, 1], seg[:, 1, 1], atol=1e-6)  # horizontal
        np.testing.assert_allclose(seg[:, 1, 0] - seg[:, 0, 0], 0.9 * 2 * 0.1, rtol=1e-5)  # length µm
        c = seg.mean(axis=1)
        vz = 0.0 if view == "xy" else c[:, 1]
        vy = c[:, 1] if view == "xy" else 0.0
        assert np.all(c[:, 0] ** 2 + vy ** 2 + vz ** 2 < 0.8 ** 2 + 1e-6)  # inside the sphere
        np.testing.assert_allclose(tab.overlays[view].colours, np.repeat(tab.overlays[view].colours[:1], len(seg), 0))
    assert len(tab.overlays["yz"]) == 0
    assert "synthetic" in tab.title_label.text() and "director (x, y, z) = (+1.00, +0.00, +0.00)" in tab.readout.text()


def test_overlay_colour_is_screen_orientation():
    from app.widgets.director_overlay import screen_angles

    seg = np.array([[[0, 0], [1, 1]], [[0, 0], [1, 0]], [[0, 0], [0, 1]]], dtype=np.float32)
    np.testing.assert_allclose(screen_angles(seg, vertical_inverted=False), [np.pi / 4, 0, np.pi / 2], atol=1e-6)
    # y down on the screen: a segment going to +y points down-right, i.e. ψ = 135°
    np.testing.assert_allclose(screen_angles(seg, vertical_inverted=True), [3 * np.pi / 4, 0, np.pi / 2],
                               atol=1e-6)


def test_crosshair_readout(qtbot, tab, droplet_result):
    data = _open(qtbot, tab, droplet_result)
    dn = data.delta_n
    z, y, x = np.unravel_index(int(np.argmax(dn)), dn.shape)
    tab.slice_view.click_view("xy", data.origin_um[2] + x * data.voxel_size_um[2],
                              data.origin_um[1] + y * data.voxel_size_um[1])
    tab.slice_view.set_crosshair(z, y, x)
    text = tab.readout.text()
    assert f"n_e = {data.n_e[z, y, x]:.4f}" in text
    assert f"n_o = {data.n_o[z, y, x]:.4f}" in text
    assert f"Δn = {dn[z, y, x]:+.4f}" in text
    d = data.director[z, y, x]
    assert f"({d[2]:+.2f}, {d[1]:+.2f}, {d[0]:+.2f})" in text
    assert f"x {data.origin_um[2] + x * data.voxel_size_um[2]:+.2f}" in text
    # the cursor readout follows the mouse position (µm) through the slice view's signal
    tab.slice_view.cursor_moved.emit((data.origin_um[0], data.origin_um[1], data.origin_um[2], 0.0))
    assert f"n_e = {data.n_e[0, 0, 0]:.4f}" in tab.cursor_readout.text()


def test_png_export_of_slices(qtbot, tab, droplet_result, tmp_path):
    _open(qtbot, tab, droplet_result)
    out = tab.export_slices_png(tmp_path / "slices.png")
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    assert not img.isNull() and img.width() > 100 and img.height() > 100


def test_truth_file_opens_labelled_as_truth(qtbot, tab, droplet_result):
    truth = next((droplet_result.parent.parent / "in").glob("*/truth.h5"))
    with qtbot.waitSignal(tab.loaded, timeout=30000):
        tab.open_truth(truth)
    assert tab.data.is_truth and "TRUTH" in tab.title_label.text()
    with h5py.File(truth, "r") as f:
        np.testing.assert_array_equal(tab.data.n_o, f["n_o"][()])


def test_a_file_without_birefringence_is_refused(qtbot, tab, tmp_path, close_error_dialogs):
    from app.jobs import JobState
    from engine.store.results import write_result

    p = write_result(tmp_path / "plain.odt.h5", measurement_json="{}",
                     tomogram={"ri": np.ones((4, 4, 4), np.float32), "voxel_size_um": (1, 1, 1),
                               "origin_um": (0, 0, 0), "medium_index": 1.33, "method": "rytov"})
    job = tab.open_result(p)
    qtbot.waitUntil(lambda: job.done, timeout=10000)
    assert job.state is JobState.FAILED and "birefringence" in str(job.error)
    assert tab.data is None and "Could not open" in tab.result_box.file_label.text()


@pytest.mark.skipif(not _osmesa_available(), reason="libOSMesa is not installed: VTK cannot render offscreen")
@pytest.mark.skipif(os.environ.get("VTK_DEFAULT_OPENGL_WINDOW") != "vtkOSOpenGLRenderWindow",
                    reason="VTK is not set to render through OSMesa (tests/conftest.py sets it)")
def test_vtk_view_renders_something_and_exports_png(qtbot, tab, droplet_result, tmp_path):
    data = _open(qtbot, tab, droplet_result)
    vv = tab.volume_view
    assert vv.available, vv.message.text()
    img = vv.snapshot()
    assert img is not None and img.ndim == 3
    # the droplet (volume, iso-surface, glyphs) makes the image differ from the plain background:
    # hide everything but the background and compare
    with_data = img.astype(int)
    tab.view3d.volume_check.setChecked(False)
    tab.view3d.surface_check.setChecked(False)
    tab.view3d.glyph_check.setChecked(False)
    vv.set_visible_parts(outline=False)
    empty = vv.snapshot().astype(int)
    assert with_data.max() > 60  # not black
    assert np.abs(with_data - empty).sum(axis=-1).max() > 60 and (np.abs(with_data - empty).sum(-1) > 30).mean() > 0.005
    # glyphs exist only where Δn passes the threshold, at the right µm positions
    seg, az = vv.glyph_segments()
    assert len(seg) == vv.glyph_count() > 0
    dn3, _d3, vox3 = data.view3d
    centres = seg.mean(axis=1)  # (x, y, z) µm
    for cx, cy, cz in centres[:50]:
        k = [int(round((c - o) / d)) for c, o, d in zip((cz, cy, cx), data.origin_um, vox3)]
        assert abs(dn3[tuple(k)]) >= vv.threshold - 1e-6
    # the threshold slider moves the iso level, and fewer glyphs pass a higher one
    n_before = vv.glyph_count()
    tab.view3d.threshold_slider.setValue(900)
    assert vv.threshold == pytest.approx(0.9 * vv.value_range[1])
    assert vv.glyph_count() < n_before
    out = tab.export_3d_png(tmp_path / "view3d.png")
    from PySide6.QtGui import QImage

    q = QImage(str(out))
    assert not q.isNull() and q.width() == img.shape[1]
    tab.view3d.volume_check.setChecked(True)
    tab.set_colormap("inferno")
    tab.view3d.opacity_slider.setValue(80)
    tab.view3d.reset_button.click()
    assert vv.snapshot().max() > 60


def test_no_opengl_shows_a_message_instead_of_the_view(qtbot, runner, monkeypatch, droplet_result, tmp_path):
    monkeypatch.setenv("ODT_STUDIO_NO_VTK", "1")
    from app.tabs.birefringence_tab import BirefringenceTab

    t = BirefringenceTab(runner)
    qtbot.addWidget(t)
    assert not t.volume_view.available
    assert "3-D view" in t.volume_view.message.text()
    assert not t.export_box.export_3d_button.isEnabled()
    with qtbot.waitSignal(t.loaded, timeout=30000):
        t.open_result(droplet_result)
    assert len(t.overlays["xy"]) >= 0 and t.data is not None  # slices work without VTK
    with pytest.raises(RuntimeError):
        t.export_3d_png(tmp_path / "x.png")


def test_vtk_failure_is_caught(qtbot, monkeypatch):
    """An exception while creating the VTK window (no OpenGL) becomes a message, not a crash."""
    from app.widgets import volume_view

    def boom(self):
        raise RuntimeError("no OpenGL here")

    monkeypatch.setattr(volume_view.VolumeView, "_build", boom)
    v = volume_view.VolumeView()
    qtbot.addWidget(v)
    assert not v.available and "no OpenGL here" in v.message.text()
    v.set_volume(np.zeros((4, 4, 4)), (1, 1, 1), (0, 0, 0))  # a no-op, no crash
    assert v.snapshot() is None


def test_decimation_for_the_3d_view():
    from app.logic.birefringence import decimate_for_3d

    dn = np.random.default_rng(0).random((10, 300, 260)).astype(np.float32)
    d = np.zeros(dn.shape + (3,), np.float32)
    dn3, d3, vox3 = decimate_for_3d(dn, d, (0.2, 0.1, 0.1), max_edge=128)
    assert max(dn3.shape) <= 128 and d3.shape == dn3.shape + (3,)
    assert vox3 == pytest.approx((0.6, 0.3, 0.3))
    np.testing.assert_array_equal(dn3, dn[::3, ::3, ::3])


def test_offscreen_without_osmesa_shows_a_message(qtbot, monkeypatch):
    """Qt offscreen + VTK's default EGL window renders garbage silently: the view refuses instead."""
    import ctypes.util

    from PySide6.QtGui import QGuiApplication

    from app.widgets.volume_view import VolumeView

    if QGuiApplication.platformName() != "offscreen":
        pytest.skip("only meaningful under Qt's offscreen platform")
    monkeypatch.delenv("VTK_DEFAULT_OPENGL_WINDOW", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    v = VolumeView()
    qtbot.addWidget(v)
    assert not v.available and "OSMesa" in v.message.text()


def test_empty_tab_shows_a_message_not_empty_axes_or_the_3d_area(qtbot, tab, droplet_result):
    """Nothing open: a message in place of the views (no "mµm" axes, no unpainted 3-D area);
    a failed open keeps it; a result replaces it, with the views on the droplet."""
    assert tab.right_stack.currentWidget() is tab.empty
    assert not tab.splitter.isVisible() and not tab.volume_view.isVisible()
    assert "No birefringence result open" in tab.empty.text()
    assert not tab.export_box.export_slices_button.isEnabled() and not tab.slices.quantity_combo.isEnabled()
    for plot in tab.slice_view.plots.values():  # even hidden: plain µm, no SI prefix
        for side in ("bottom", "left"):
            axis = plot.getAxis(side)
            assert not axis.autoSIPrefix and axis.labelUnitPrefix == ""
    with qtbot.waitSignal(tab.runner.job_done, timeout=10000):
        tab.open_result(droplet_result.with_name("missing.odt.h5"))
    assert tab.right_stack.currentWidget() is tab.empty and "Could not open" in tab.empty.text()
    from app.errors import open_error_dialogs

    for d in open_error_dialogs():  # the runner's error dialog: closed, not left to later tests
        d.done(0)
    _open(qtbot, tab, droplet_result)
    assert tab.right_stack.currentIndex() == 1 and tab.splitter.isVisible()
    assert tab.export_box.export_slices_button.isEnabled() and tab.slices.quantity_combo.isEnabled()
    z, y, x = tab.slice_view.crosshair
    assert tab.data.n_e[z, y, x] > 1.48  # on the droplet (n_e 1.57 in n_m 1.46)


def test_route_label_says_which_reconstruction_made_the_volumes(qtbot, tab, droplet_result, tmp_path):
    """#20 item 4: the tab names the route (the file's tomogram/method, else the recorded option)."""
    import json
    import shutil

    _open(qtbot, tab, droplet_result)  # processed with the DTT route
    assert tab.data.route == "dtt-rytov"
    assert tab.result_box.route_label.text() == "Route: DTT (first-order dielectric tensor tomography)"
    refined = tmp_path / "refined.odt.h5"
    shutil.copyfile(droplet_result, refined)
    with h5py.File(refined, "r+") as f:  # as the dtt-refined route writes it (tests/engine/test_pipeline.py)
        f["tomogram"].attrs["method"] = "dtt-refined"
    _open(qtbot, tab, refined)
    assert tab.result_box.route_label.text().startswith("Route: DTT refined")
    with h5py.File(refined, "r+") as f:  # no tomogram/method: the recorded option says it
        del f["tomogram"].attrs["method"]
        f.attrs["processing_options"] = json.dumps({"birefringence": True, "birefringence_method": "learned"})
    _open(qtbot, tab, refined)
    assert tab.result_box.route_label.text().startswith("Route: learned generator")
    with h5py.File(refined, "r+") as f:
        del f.attrs["processing_options"]
    _open(qtbot, tab, refined)
    assert tab.result_box.route_label.text() == "Route: not recorded in this file"
