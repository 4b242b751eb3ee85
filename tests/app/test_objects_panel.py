"""Reconstruction tab: objects (segmentation in the job runner, overlay, table linked both ways to the
views, CSV) and the export of every volume through engine.store.export (OME-TIFF, OME-Zarr, ImageJ)."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import Qt

from app.jobs import JobRunner, JobState
from app.tabs.reconstruction_tab import ReconstructionTab, VolumeSet, export_volumes
from app.widgets.objects_panel import SELECTED_ALPHA
from engine.store.results import BirefringenceResult, TomogramResult, read_result, write_result

NM = 1.337
VOXEL = (0.3, 0.2, 0.2)  # (dz, dy, dx) µm
SHAPE = (20, 36, 44)
# two spheres: (centre z, y, x in µm, radius µm, Δn)
SPHERES = (((-0.6, -1.2, -2.0), 1.2, 0.03), ((0.6, 1.0, 2.2), 1.0, 0.02))


def _origin() -> tuple:
    return tuple(-(n // 2) * d for n, d in zip(SHAPE, VOXEL))


def _two_spheres() -> np.ndarray:
    z, y, x = (o + d * np.arange(n) for o, d, n in zip(_origin(), VOXEL, SHAPE))
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    ri = np.full(SHAPE, NM, np.float32)
    for (cz, cy, cx), r, dn in SPHERES:
        ri[(zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = NM + dn
    return ri


def _volume_set(out_path: Path | None = None, birefringence=None) -> VolumeSet:
    ri = _two_spheres()
    t = TomogramResult(ri=ri, ri_tv=ri.copy(), voxel_size_um=VOXEL, origin_um=_origin(), medium_index=NM,
                       method="rytov+nonneg")
    return VolumeSet(name="spheres", tomogram=t, measurement_json='{"format": "odt-measurement/1"}',
                     out_path=out_path, birefringence=birefringence)


def _result_file(path: Path) -> Path:
    vs = _volume_set()
    return write_result(path, measurement_json=vs.measurement_json, tomogram=vs.tomogram)


@pytest.fixture
def tab(qtbot, runner: JobRunner, settings):
    t = ReconstructionTab(runner, settings)
    qtbot.addWidget(t)
    t.resize(1400, 820)
    t.show()
    return t


def _find(qtbot, tab: ReconstructionTab, runner: JobRunner):
    tab.objects_box.threshold_combo.setCurrentIndex(tab.objects_box.threshold_combo.findData("manual"))
    tab.objects_box.dn_spin.setValue(0.01)
    qtbot.mouseClick(tab.objects_box.find_button, Qt.MouseButton.LeftButton)
    job = tab._objects_job
    assert job is not None
    assert runner.wait(30) and job.state is JobState.FINISHED
    qtbot.waitUntil(lambda: tab.result.objects is not None, timeout=5000)
    return job


def _sphere_voxel(tab: ReconstructionTab, i: int) -> tuple[int, int, int]:
    (cz, cy, cx), _r, _dn = SPHERES[i]
    return tuple(tab.view.index_of(a, c) for a, c in zip("zyx", (cz, cy, cx)))  # type: ignore[return-value]


# ---------------------------------------------------------------------------- objects
def test_find_objects_runs_in_the_background_and_lists_both_spheres(qtbot, tab, runner, monkeypatch):
    import engine.analysis.objects as objects

    threads: list[int] = []
    real = objects.segment_objects

    def spy(*a, **k):
        threads.append(threading.get_ident())
        return real(*a, **k)

    monkeypatch.setattr(objects, "segment_objects", spy)
    tab.show_volumes(_volume_set())
    assert tab.objects_box.find_button.isEnabled() and not tab.objects_box.csv_button.isEnabled()
    assert not tab.objects_table.isVisible()
    _find(qtbot, tab, runner)
    assert threads and threads[0] != threading.get_ident()  # the engine ran in the job's thread
    assert tab.objects_table.isVisible() and tab.objects_table.row_count() == 2
    qtbot.waitUntil(tab.objects_box.find_button.isEnabled, timeout=5000)  # enabled again after the job
    assert tab.objects_box.csv_button.isEnabled()
    obj = tab.result.objects
    assert obj.volume == "ri_tv" and obj.threshold_dn == pytest.approx(0.01) and not obj.saved
    for m, ((cz, cy, cx), r, dn) in zip(obj.measurements, SPHERES):
        assert m.volume_um3 == pytest.approx(4 / 3 * np.pi * r ** 3, rel=0.15)
        assert (m.centroid_z_um, m.centroid_y_um, m.centroid_x_um) == pytest.approx((cz, cy, cx), abs=0.15)
        assert m.mean_ri == pytest.approx(NM + dn, abs=1e-5)
    headers = [tab.objects_table.model().headerData(c, Qt.Orientation.Horizontal)
               for c in range(tab.objects_table.model().columnCount())]
    assert headers[:3] == ["#", "Volume\nµm³", "Dry mass\npg"] and "Mean\nΔn" not in headers
    assert "2</b> objects" in tab.objects_box.summary.text()
    # the overlay: labels drawn over the slices, transparent where there is no object, placed
    # exactly on the slice images (µm), in every view
    assert tab.view.overlay is not None and tab.view.overlays["xy"].isVisible()
    for view in (tab.view, tab.view2):
        for name in ("xy", "xz", "yz"):
            ov, im = view.overlays[name], view.images[name]
            r_ov, r_im = ov.mapRectToParent(ov.boundingRect()), im.mapRectToParent(im.boundingRect())
            assert (r_ov.x(), r_ov.y(), r_ov.width(), r_ov.height()) == \
                pytest.approx((r_im.x(), r_im.y(), r_im.width(), r_im.height()))
            assert view.overlay_image(name).shape == view.view_image(name).shape
    assert (tab.view.overlays["xy"].image[..., 3][tab.view.overlay_image("xy") == 0] == 0).all()
    # maximum-intensity projections: the overlay projects the labels too
    tab.set_mip(True)
    np.testing.assert_array_equal(tab.view.overlay_image("xy"), obj.labels.max(axis=0))
    assert set(np.unique(tab.view.overlay_image("xy"))) == {0, 1, 2}
    tab.set_mip(False)
    tab.objects_box.overlay_check.setChecked(False)
    assert tab.view.overlay is None and not tab.view.overlays["xy"].isVisible()
    tab.objects_box.overlay_check.setChecked(True)
    assert tab.view.overlays["xy"].isVisible()
    # a new tomogram drops the objects of the old one
    tab.show_volumes(_volume_set())
    assert tab.result.objects is None and tab.view.overlay is None and not tab.objects_table.isVisible()


def test_a_row_moves_the_views_to_the_centroid_and_a_click_on_an_object_selects_its_row(qtbot, tab, runner):
    tab.show_volumes(_volume_set())
    _find(qtbot, tab, runner)
    table = tab.objects_table
    # click the second row: both views go to the second sphere's centroid, drawn highlighted
    row = table.view_row_of_label(2)
    rect = table.visualRect(table.model().index(row, 1))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert table.selected_label() == 2
    m = tab.result.objects.measurement(2)
    want = tuple(tab.view.index_of(a, getattr(m, f"centroid_{a}_um")) for a in "zyx")
    assert tab.view.crosshair == want
    assert tab.view2.crosshair == want  # raw and TV side by side, linked
    assert tab.view.overlay_value_at(*want) == 2
    colours = tab.view._overlay_colors
    assert colours[2, 3] == SELECTED_ALPHA and colours[1, 3] < SELECTED_ALPHA
    # the xy slice shown is the centroid's: the overlay image there holds the object
    assert (tab.view.overlay_image("xy") == 2).any()
    # click on the first sphere in the xy view (at its slice): its row is selected
    z1, y1, x1 = _sphere_voxel(tab, 0)
    tab.view.set_crosshair(z1, 0, 0)
    (cz, cy, cx), _r, _dn = SPHERES[0]
    tab.view.click_view("xy", cx, cy)
    assert tab.view.crosshair == (z1, y1, x1)
    assert table.selected_label() == 1
    assert tab.view._overlay_colors[1, 3] == SELECTED_ALPHA
    # a click on the background clears the selection
    tab.view.click_view("xy", 3.5, -3.0)
    assert table.selected_label() == 0
    # with projections, a click selects the object the projection shows there, off its slice too
    tab.set_mip(True)
    z2, y2, x2 = _sphere_voxel(tab, 1)
    assert tab.view.crosshair[0] != z2
    (cz, cy, cx), _r, _dn = SPHERES[1]
    tab.view.click_view("xy", cx, cy)
    assert tab.view.crosshair == (z1, y2, x2) and tab.view.overlay_value_at(*tab.view.crosshair) == 0
    assert table.selected_label() == 2


def test_objects_csv_has_the_batch_columns(qtbot, tab, runner, tmp_path):
    from engine.pipeline.measure import MEASUREMENTS_COLUMNS

    tab.show_volumes(_volume_set())
    _find(qtbot, tab, runner)
    assert tab.objects_box.csv_button.isEnabled()
    job = tab.export_objects_csv(tmp_path / "objects.csv")
    assert runner.wait(20) and job.state is JobState.FINISHED
    with open(tmp_path / "objects.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and tuple(rows[0]) == MEASUREMENTS_COLUMNS
    assert rows[0]["name"] == "spheres" and rows[0]["source_volume"] == "ri_tv"
    assert float(rows[0]["threshold_dn"]) == pytest.approx(0.01)
    for row, m in zip(rows, tab.result.objects.measurements):
        assert float(row["volume_um3"]) == pytest.approx(m.volume_um3, rel=1e-6)
        assert float(row["dry_mass_pg"]) == pytest.approx(m.dry_mass_pg, rel=1e-6)


def test_labels_are_stored_in_the_result_file_and_measured_when_it_is_opened(qtbot, tab, runner, tmp_path):
    path = _result_file(tmp_path / "spheres.odt.h5")
    with qtbot.waitSignal(tab.volume_shown, timeout=20_000):
        tab.open_result(path)
    _find(qtbot, tab, runner)
    assert tab.result.objects.saved
    stored = read_result(path).tomogram.labels
    np.testing.assert_array_equal(stored, tab.result.objects.labels)
    fresh = ReconstructionTab(runner)
    qtbot.addWidget(fresh)
    with qtbot.waitSignal(fresh.volume_shown, timeout=20_000):
        fresh.open_result(path)
    assert runner.wait(30)
    qtbot.waitUntil(lambda: fresh.result.objects is not None, timeout=5000)
    assert fresh.objects_table.row_count() == 2 and fresh.result.objects.saved
    assert "labels of the result file" in fresh.objects_box.summary.text()


def test_birefringent_results_add_mean_dn_and_order_parameter_and_export_dn(qtbot, tab, runner, tmp_path):
    ri = _two_spheres()
    director = np.zeros(SHAPE + (3,), np.float32)
    director[..., 2] = 1.0  # all along x: S = 1
    bire = BirefringenceResult(n_e=ri + 0.01, n_o=ri.copy(), director=director)
    vs = _volume_set(birefringence=bire)
    assert export_volumes(vs) == ["ri", "ri_tv", "n_e", "n_o", "dn", "labels"]
    tab.show_volumes(vs)
    assert [tab.export_volume_combo.itemData(i) for i in range(tab.export_volume_combo.count())] == \
        export_volumes(vs)
    _find(qtbot, tab, runner)
    model = tab.objects_table.model()
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers[-2:] == ["Mean\nΔn", "Order\nS"]
    m = tab.result.objects.measurements[0]
    assert m.mean_birefringence == pytest.approx(0.01, abs=1e-6) and m.order_parameter == pytest.approx(1.0)
    # Δn = n_e − n_o exported from the GUI, with its scale
    job = tab.export_volume("dn", "ome-tiff", tmp_path / "dn.ome.tif")
    assert runner.wait(20) and job.state is JobState.FINISHED
    ome = _ome_physical_sizes(tmp_path / "dn.ome.tif")
    assert (ome["Z"], ome["Y"], ome["X"]) == pytest.approx(VOXEL)
    np.testing.assert_allclose(ome["data"], 0.01, atol=1e-6)


# ---------------------------------------------------------------------------- export
def _ome_physical_sizes(path: Path) -> dict:
    import xml.etree.ElementTree as ET

    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        root = ET.fromstring(tif.ome_metadata)
        data = tif.asarray()
    pixels = next(e for e in root.iter() if e.tag.endswith("Pixels"))
    out = {k: float(pixels.get(f"PhysicalSize{k}")) for k in "XYZ"}
    out["unit"] = pixels.get("PhysicalSizeXUnit")
    plane = next(e for e in root.iter() if e.tag.endswith("Plane"))
    out["origin"] = tuple(float(plane.get(f"Position{k}")) for k in "ZYX")
    out["data"] = data
    return out


def test_export_ome_tiff_from_the_gui_keeps_the_scale(qtbot, tab, runner, tmp_path):
    vs = _volume_set()  # not in a file yet: written to a temporary result file first
    tab.show_volumes(vs)
    assert tab.export_button.isEnabled()
    assert tab.export_volume_combo.currentData() == "ri_tv"  # the volume on screen
    job = tab.export_volume("ri_tv", "ome-tiff", tmp_path / "s.ome.tif")
    assert runner.wait(20) and job.state is JobState.FINISHED
    ome = _ome_physical_sizes(tmp_path / "s.ome.tif")
    assert (ome["Z"], ome["Y"], ome["X"]) == pytest.approx(VOXEL) and ome["unit"] == "µm"
    assert ome["origin"] == pytest.approx(_origin())
    np.testing.assert_array_equal(ome["data"], vs.volumes["tv"])
    # the labels of the objects found here, not a new segmentation
    _find(qtbot, tab, runner)
    job = tab.export_volume("labels", "imagej", tmp_path / "labels.tif")
    assert runner.wait(20) and job.state is JobState.FINISHED
    with tifffile.TiffFile(tmp_path / "labels.tif") as tif:
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == pytest.approx(VOXEL[0])
        np.testing.assert_array_equal(tif.asarray(), tab.result.objects.labels)


def test_export_from_an_opened_result_file_and_to_ome_zarr(qtbot, tab, runner, tmp_path):
    pytest.importorskip("zarr")
    import zarr

    path = _result_file(tmp_path / "spheres.odt.h5")
    with qtbot.waitSignal(tab.volume_shown, timeout=20_000):
        tab.open_result(path)
    job = tab.export_volume("ri", "ome-zarr", tmp_path / "s.ome.zarr")
    assert runner.wait(20) and job.state is JobState.FINISHED
    root = zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="r")
    transforms = root.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert transforms[0]["scale"] == pytest.approx(VOXEL) and transforms[1]["translation"] == pytest.approx(_origin())
    np.testing.assert_array_equal(np.asarray(root["0"]), read_result(path).tomogram.ri)
