"""Objects and measurements (engine/analysis/objects.py) on simulated spheres and droplets.

The spheres are painted with sub-voxel anti-aliasing (engine/simulate/phantoms.py), so the
exact volume 4/3 π r³ and dry mass Δn·V/α are the truth. Volumes are small (≤ 40³) to keep
the tests fast.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from engine.analysis import (DEFAULT_ALPHA_UM3_PER_PG, MEASUREMENT_COLUMNS, dn_threshold, measure_objects,
                             order_parameter, segment_objects, write_measurements_csv)
from engine.simulate.phantoms import _Canvas, _paint_capsule, _paint_sphere, make_bead, make_lc_droplet

NM = 1.337
R_UM, DN = 2.5, 0.023
V_TRUE = 4 / 3 * math.pi * R_UM ** 3  # 65.45 µm³
M_TRUE = DN * V_TRUE / DEFAULT_ALPHA_UM3_PER_PG  # 7.92 pg


def _origin(shape, voxel):
    return tuple(-(n // 2) * d for n, d in zip(shape, voxel))


@pytest.mark.parametrize("voxel", [(0.2, 0.2, 0.2), (0.3, 0.2, 0.2)])
def test_sphere_volume_mass_area_sphericity_centroid(voxel):
    shape = tuple(int(math.ceil(7.0 / v)) for v in voxel)
    centre = (0.1, -0.15, 0.2)
    ph = make_bead(shape, voxel, NM, radius_um=R_UM, index=NM + DN, centre_um=centre, material="silica")
    th = dn_threshold(ph.ri, NM)
    labels = segment_objects(ph.ri, NM, voxel)
    assert labels.dtype == np.int32 and labels.max() == 1
    (m,) = measure_objects(ph.ri, labels, NM, voxel, _origin(shape, voxel), threshold=th)
    print(f"\nvoxel {voxel}: threshold Δn {th:.4f}; V {m.volume_um3:.2f} µm³ ({m.volume_um3 / V_TRUE - 1:+.2%}), "
          f"dry mass {m.dry_mass_pg:.3f} pg ({m.dry_mass_pg / M_TRUE - 1:+.2%}), "
          f"area {m.surface_area_um2:.2f} µm² ({m.surface_area_um2 / (4 * math.pi * R_UM ** 2) - 1:+.2%}), "
          f"sphericity {m.sphericity:.4f}")
    # Otsu's threshold lies above half of Δn on a sharp, noise-free edge (noise and blur bring
    # it down): the voxel-count volume is 3-4 % small; the dry mass, summed over the grown
    # mask, is not affected
    assert abs(m.volume_um3 / 65.4 - 1) < 0.05
    assert abs(m.dry_mass_pg / M_TRUE - 1) < 0.02
    assert abs(m.surface_area_um2 / (4 * math.pi * R_UM ** 2) - 1) < 0.04
    # at half of Δn (the edge's mid-point) the volume is right to < 1 %
    (h,) = measure_objects(ph.ri, segment_objects(ph.ri, NM, voxel, threshold=DN / 2), NM, voxel,
                           _origin(shape, voxel), threshold=DN / 2)
    print(f"  at Δn/2: V {h.volume_um3 / V_TRUE - 1:+.2%}, "
          f"area {h.surface_area_um2 / (4 * math.pi * R_UM ** 2) - 1:+.2%}")
    assert abs(h.volume_um3 / V_TRUE - 1) < 0.01 and abs(h.dry_mass_pg / M_TRUE - 1) < 0.01
    assert h.sphericity == pytest.approx(1.0, abs=0.01)
    assert m.sphericity == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose([m.centroid_z_um, m.centroid_y_um, m.centroid_x_um], centre, atol=0.02)
    assert m.mean_ri == pytest.approx(NM + DN, abs=0.0025) and m.max_ri == pytest.approx(NM + DN, abs=1e-5)
    # the box holds the sphere, to within a voxel
    for ax, c, d in zip("zyx", centre, voxel):
        assert c - R_UM - d <= getattr(m, f"bbox_min_{ax}_um") <= c - R_UM + d / 2
        assert c + R_UM - d / 2 <= getattr(m, f"bbox_max_{ax}_um") <= c + R_UM + d
    assert not m.touches_edge and m.mean_birefringence is None and m.order_parameter is None


def test_dry_mass_alpha_and_margin_and_binary_surface():
    voxel = (0.2, 0.2, 0.2)
    ph = make_bead((35, 35, 35), voxel, NM, radius_um=R_UM, index=NM + DN, centre_um=(0, 0, 0), material="silica")
    labels = segment_objects(ph.ri, NM, voxel, threshold=DN / 2)
    (a,) = measure_objects(ph.ri, labels, NM, voxel, alpha_um3_per_pg=0.19, threshold=DN / 2)
    (b,) = measure_objects(ph.ri, labels, NM, voxel, alpha_um3_per_pg=0.2, threshold=DN / 2)
    assert b.dry_mass_pg == pytest.approx(a.dry_mass_pg * 0.19 / 0.2, rel=1e-9)
    # summing only inside the mask loses the anti-aliased edge below the threshold (~3 %)
    (c,) = measure_objects(ph.ri, labels, NM, voxel, mass_margin_um=0)
    assert -0.05 < c.dry_mass_pg / M_TRUE - 1 < -0.01 and abs(a.dry_mass_pg / M_TRUE - 1) < 0.01
    # without the threshold the surface is the binary one: ~9 % too much area
    assert 0.88 < c.sphericity < 0.95
    assert c.volume_um3 == a.volume_um3


def test_blurred_noisy_sphere():
    """A tomogram-like sphere: blurred more along z than across, with noise; Otsu threshold."""
    from scipy import ndimage as ndi

    voxel = (0.25, 0.2, 0.2)
    ph = make_bead((36, 40, 40), voxel, NM, radius_um=R_UM, index=NM + DN, centre_um=(0, 0, 0), material="silica")
    sigma_um = np.array([0.4, 0.2, 0.2])
    ri = NM + ndi.gaussian_filter(ph.ri - NM, sigma_um / voxel)
    ri = (ri + np.random.default_rng(0).normal(0, 0.001, ri.shape)).astype(np.float32)
    labels = segment_objects(ri, NM, voxel)
    (m,) = measure_objects(ri, labels, NM, voxel, threshold=dn_threshold(ri, NM))
    print(f"\nblurred sphere: V {m.volume_um3 / V_TRUE - 1:+.2%}, dry mass {m.dry_mass_pg / M_TRUE - 1:+.2%}, "
          f"sphericity {m.sphericity:.3f}")
    assert abs(m.volume_um3 / V_TRUE - 1) < 0.05 and abs(m.dry_mass_pg / M_TRUE - 1) < 0.05
    assert 0.93 < m.sphericity < 1.01


def test_two_touching_spheres_are_split():
    voxel = (0.3, 0.2, 0.2)
    cv = _Canvas((24, 36, 56), voxel, NM)
    for x in (-2.2, 2.2):  # 4.4 µm apart: they overlap, joined by a neck of radius 1.2 µm
        _paint_sphere(cv, (0.0, 0.0, x), R_UM, NM + DN)
    ri = (cv.vol + np.random.default_rng(1).normal(0, 0.002, cv.vol.shape)).astype(np.float32)
    one = segment_objects(ri, NM, voxel)
    assert one.max() == 1
    two = segment_objects(ri, NM, voxel, split_touching=True)
    assert two.max() == 2
    ms = measure_objects(ri, two, NM, voxel, _origin(ri.shape, voxel), threshold=dn_threshold(ri, NM))
    xs = sorted(m.centroid_x_um for m in ms)
    np.testing.assert_allclose(xs, [-2.2 + 0.1, 2.2 - 0.1], atol=0.25)  # each minus the cut-off cap
    cap = math.pi * (R_UM - 2.2) ** 2 * (3 * R_UM - (R_UM - 2.2)) / 3  # the overlap each one loses
    for m in ms:
        assert abs(m.volume_um3 / (V_TRUE - cap) - 1) < 0.05
        assert abs(m.dry_mass_pg / (DN * (V_TRUE - cap) / 0.19) - 1) < 0.05


def test_rods_and_separate_objects_are_not_split():
    """A rod's distance map is a ridge, not two peaks and a neck: it stays one object."""
    voxel = (0.25, 0.1, 0.1)
    cv = _Canvas((16, 40, 80), voxel, NM)
    _paint_capsule(cv, (0.0, -0.8, -2.5), (0.0, 0.4, 2.5), 0.5, NM + 0.02)  # bacterium-like rod, 6 µm
    _paint_capsule(cv, (0.0, 1.4, -3.0), (0.0, 1.4, -1.0), 0.45, NM + 0.02)  # a shorter one beside it
    ri = (cv.vol + np.random.default_rng(2).normal(0, 0.001, cv.vol.shape)).astype(np.float32)
    assert segment_objects(ri, NM, voxel, split_touching=True).max() == 2


def test_segmentation_threshold_size_filter_and_holes():
    voxel = (0.25, 0.25, 0.25)
    cv = _Canvas((24, 40, 40), voxel, NM)
    _paint_sphere(cv, (0, 0, -2.5), 1.5, NM + 0.03)   # big, dense
    _paint_sphere(cv, (0, 0, 2.5), 1.5, NM + 0.008)   # big, faint
    _paint_sphere(cv, (0, 3.5, 3.5), 0.3, NM + 0.03)  # tiny: 0.11 µm³
    ri = cv.vol.astype(np.float32)
    assert segment_objects(ri, NM, voxel, threshold=0.004, min_volume_um3=0.0).max() == 3
    assert segment_objects(ri, NM, voxel, threshold=0.004, min_volume_um3=1.0).max() == 2
    assert segment_objects(ri, NM, voxel, threshold=0.015, min_volume_um3=1.0).max() == 1
    # a vacuole below the threshold inside a cell is filled (or not)
    _paint_sphere(cv, (0, 0, -2.5), 0.6, NM)
    hollow = cv.vol.astype(np.float32)
    v_full = (segment_objects(hollow, NM, voxel, threshold=0.01, min_volume_um3=1.0) > 0).sum()
    v_hole = (segment_objects(hollow, NM, voxel, threshold=0.01, min_volume_um3=1.0, fill_holes=False) > 0).sum()
    assert 0.4 < (v_full - v_hole) / (4 / 3 * math.pi * 0.6 ** 3 / 0.25 ** 3) < 1.2  # 58 voxels, less the edge
    # nothing denser than the medium: no objects, no measurements
    flat = np.full((8, 8, 8), NM, np.float32)
    assert segment_objects(flat, NM, voxel).max() == 0
    assert measure_objects(flat, np.zeros((8, 8, 8), np.int32), NM, voxel) == []
    with pytest.raises(ValueError, match="positive"):
        segment_objects(ri, NM, voxel, threshold=-0.01)
    with pytest.raises(ValueError, match="otsu"):
        segment_objects(ri, NM, voxel, threshold="li")


def test_object_at_the_edge_is_flagged():
    voxel = (0.25, 0.25, 0.25)
    cv = _Canvas((16, 24, 24), voxel, NM)
    _paint_sphere(cv, (0, 0, -3.0), 1.5, NM + 0.02)  # x from −4.5: the volume starts at −3.0
    labels = segment_objects(cv.vol, NM, voxel)
    (m,) = measure_objects(cv.vol, labels, NM, voxel, _origin(labels.shape, voxel))
    assert m.touches_edge and m.bbox_min_x_um == pytest.approx(-3.0 - 0.125)


def test_order_parameter():
    s, n = order_parameter(np.tile([0.0, 0.6, 0.8], (50, 1)))
    assert s == pytest.approx(1.0) and np.allclose(n, [0, 0.6, 0.8])
    s, n = order_parameter(np.tile([0.0, 0.6, -0.8], (50, 1)) * np.repeat([1, -1], 25)[:, None])  # headless
    assert s == pytest.approx(1.0) and np.allclose(n, [0, -0.6, 0.8])
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(20000, 3))
    assert abs(order_parameter(iso / np.linalg.norm(iso, axis=1, keepdims=True))[0]) < 0.02
    assert math.isnan(order_parameter(np.zeros((4, 3)))[0])


@pytest.mark.parametrize("configuration", ["bipolar", "radial"])
def test_birefringent_droplet(configuration):
    voxel = (0.25, 0.25, 0.25)
    ph = make_lc_droplet((24, 24, 24), voxel, 1.46, configuration=configuration, radius_um=2.0,
                         n_o=1.52, n_e=1.56, axis=(0.0, 1.0, 0.0))
    labels = segment_objects(ph.ri, ph.medium_index, voxel)
    assert labels.max() == 1
    (m,) = measure_objects(ph.ri, labels, ph.medium_index, voxel,
                           birefringence={"n_e": ph.n_e, "n_o": ph.n_o, "director": ph.director})
    assert m.mean_birefringence == pytest.approx(0.04, abs=0.004)
    if configuration == "radial":
        assert abs(m.order_parameter) < 0.05
    else:  # bends towards the poles: ordered along the axis, S < 1
        assert 0.4 < m.order_parameter < 0.95
        assert abs(m.director_y) > 0.99


def test_csv_columns_and_units(tmp_path):
    voxel = (0.25, 0.25, 0.25)
    ph = make_bead((24, 24, 24), voxel, NM, radius_um=1.5, index=1.36, centre_um=(0, 0, 0), material="silica")
    ms = measure_objects(ph.ri, segment_objects(ph.ri, NM, voxel), NM, voxel)
    p = write_measurements_csv(tmp_path / "m.csv", [{"name": "a", **ms[0].as_row()}])
    rows = list(csv.DictReader(p.open()))
    assert list(rows[0])[:2] == ["name", "label"] and list(rows[0])[1:] == list(MEASUREMENT_COLUMNS)
    for col in ("volume_um3", "surface_area_um2", "dry_mass_pg", "mean_ri", "centroid_x_um", "bbox_max_z_um"):
        assert col in rows[0]
    assert float(rows[0]["volume_um3"]) == pytest.approx(ms[0].volume_um3, rel=1e-6)
    assert rows[0]["touches_edge"] == "0" and rows[0]["order_parameter"] == ""
    assert not [q for q in tmp_path.iterdir() if q.name.endswith(".tmp")]


# ---------------------------------------------------------------------------- batch --measure
def _write_spheres(path, centres_x, *, tv=False, labels=None, voxel=(0.25, 0.25, 0.25), shape=(16, 24, 40)):
    from engine.store.results import TomogramResult, write_result

    cv = _Canvas(shape, voxel, NM)
    for x in centres_x:
        _paint_sphere(cv, (0.0, 0.0, x), 1.5, NM + DN)
    ri = (cv.vol + np.random.default_rng(3).normal(0, 0.001, shape)).astype(np.float32)
    origin = _origin(shape, voxel)
    write_result(path, measurement_json="{}", tomogram=TomogramResult(
        ri=ri - 0.001, ri_tv=ri if tv else None, voxel_size_um=voxel, origin_um=origin, medium_index=NM,
        method="rytov"))
    if labels is not None:
        import h5py

        with h5py.File(path, "a") as f:
            f["tomogram/labels"] = labels
    return path


def test_measure_results_writes_one_row_per_object(tmp_path):
    from engine.pipeline.measure import MEASUREMENTS_COLUMNS, measure_results

    _write_spheres(tmp_path / "two.odt.h5", (-2.5, 2.5), tv=True)
    _write_spheres(tmp_path / "one.odt.h5", (0.0,))
    _write_spheres(tmp_path / "none.odt.h5", ())
    stored = np.zeros((16, 24, 40), np.uint16)
    stored[6:10, 10:14, 18:22] = 7
    _write_spheres(tmp_path / "stored.odt.h5", (0.0,), labels=stored)
    (tmp_path / "broken.odt.h5").write_text("not HDF5")
    logs = []
    s = measure_results(tmp_path, ["two", "one", "none", "broken", "missing", "stored"], log=logs.append)
    assert s.csv_path == tmp_path / "measurements.csv" and s.n_objects == 4
    assert s.objects_per_name == {"two": 2, "one": 1, "none": 0, "stored": 1}
    assert set(s.errors) == {"broken", "missing"} and "broken.odt.h5" in s.errors["broken"]
    assert any("FAILED" in line for line in logs)
    rows = list(csv.DictReader(s.csv_path.open()))
    assert tuple(rows[0]) == MEASUREMENTS_COLUMNS and list(rows[0])[0] == "name"
    assert [r["name"] for r in rows] == ["two", "two", "one", "stored"]
    assert [r["source_volume"] for r in rows] == ["ri_tv", "ri_tv", "ri", "ri"]
    v_true = 4 / 3 * math.pi * 1.5 ** 3
    for r in rows[:2]:
        assert abs(float(r["volume_um3"]) / v_true - 1) < 0.05
        assert abs(float(r["dry_mass_pg"]) / (DN * v_true / 0.19) - 1) < 0.05
        assert float(r["alpha_um3_per_pg"]) == 0.19 and float(r["medium_index"]) == NM
    assert sorted(round(float(r["centroid_x_um"]), 1) for r in rows[:2]) == [-2.5, 2.5]
    assert rows[3]["label"] == "7" and float(rows[3]["volume_um3"]) == pytest.approx(64 * 0.25 ** 3)


def test_batch_measure_flag(tmp_path, monkeypatch):
    """``odt-studio batch ... --measure``: the post-pass runs over the results the batch wrote."""
    from _folders import make_measurement

    from app.cli import main
    from engine.pipeline import process

    for name in ("a", "b"):
        make_measurement(tmp_path / "in", name)

    def fake_process_folder(folder, out_path, **kw):
        _write_spheres(out_path, (-2.5, 2.5) if folder.name == "a" else (0.0,))
        return {"fields_used": 2}

    monkeypatch.setattr(process, "process_folder", fake_process_folder)
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "in"), "--out", str(out), "--screen", "none"]) == 0
    assert not (out / "measurements.csv").exists()
    assert main(["batch", str(tmp_path / "in"), "--out", str(out), "--screen", "none", "--measure"]) == 0
    rows = list(csv.DictReader((out / "measurements.csv").open()))
    assert [r["name"] for r in rows] == ["a", "a", "b"]
