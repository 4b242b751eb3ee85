"""Forward models of anisotropic samples checked against exact references and an independent code (#20).

* Exact uniaxial slab (Berreman 4×4, ``_uniaxial_slab.slab_jones``) against the project's Jones
  multi-slice (``propagate_vectorial``) and against dtmm.
* Isotropic limit: a sphere against the exact scalar Mie field (``engine.simulate.mie``).
* A small nematic droplet: the project's multi-slice against dtmm (skipped without dtmm).

The bounds are the measured values with margin (``-s`` prints them). The measured pattern (see the
report of #20): at normal incidence every model agrees with the slab to < 2e-3; at oblique
incidence dtmm stays within 7e-3 of the exact slab while the project's multi-slice, which uses
the transverse tensor for propagation along z, is off by up to 0.15 at β = n sin θ ≈ 0.94; on
the isotropic sphere the project's SSNP is the closer one to Mie.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.simulate.beam_propagation import propagate_vectorial, snap_illuminations
from engine.simulate.mie import mie_fields
from engine.simulate.phantoms import Phantom

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _dtmm_droplets import HAVE_DTMM, Droplet, dtmm_jones, make_droplet
from _uniaxial_slab import slab_jones

LAM, NM, NA, DX = 0.633, 1.45, 1.2, 0.1
NO, NE = 1.53, 1.57
needs_dtmm = pytest.mark.skipif(not HAVE_DTMM, reason="dtmm not installed (pip install dtmm)")


def _ills(shape: int, betas=(0.0, 0.36, 0.63)) -> np.ndarray:
    """Grid-snapped illuminations of increasing obliquity β = λ|f| at azimuths 0, 100°, 200°…"""
    f = [(b / LAM * math.cos(k * 1.75), b / LAM * math.sin(k * 1.75)) for k, b in enumerate(betas)]
    return snap_illuminations(np.asarray(f), (shape, shape), (DX, DX))


def _slab(shape=32, nz=16, layers=10, angle=0.5, tilt=0.0) -> Droplet:
    d = np.array([math.sin(tilt), math.cos(tilt) * math.sin(angle), math.cos(tilt) * math.cos(angle)])
    cov = np.zeros((nz, shape, shape))
    cov[nz // 2 - layers // 2: nz // 2 - layers // 2 + layers] = 1.0
    eps_lc = NO ** 2 * np.eye(3) + (NE ** 2 - NO ** 2) * np.outer(d, d)
    eps = cov[..., None, None] * eps_lc + (1 - cov)[..., None, None] * NM ** 2 * np.eye(3)
    return Droplet(director=cov[..., None] * d, coverage=cov, epsilon=eps.astype(np.float32), voxel_um=DX,
                   medium_index=NM, n_o=NO, n_e=NE, radius_um=0.0, configuration="slab", axis=tuple(d))


def _phantom(dr: Droplet) -> Phantom:
    ri = np.sqrt(np.trace(dr.epsilon, axis1=-2, axis2=-1) / 3).astype(np.float32)
    return Phantom(ri=ri, voxel_size_um=(dr.voxel_um,) * 3, medium_index=dr.medium_index, kind="lc-droplets",
                   epsilon=dr.epsilon)


def _slab_errors(jones: np.ndarray, dr: Droplet, ill: np.ndarray) -> np.ndarray:
    """max |J − J_exact| per illumination at the central pixel."""
    eps = dr.epsilon[dr.shape[0] // 2, 0, 0]
    thickness = float(dr.coverage[:, 0, 0].sum()) * DX
    c = dr.shape[1] // 2
    exact = np.stack([slab_jones(eps, thickness, NM, LAM, f) for f in ill])
    return np.abs(jones[:, :, :, c, c] - exact).reshape(len(ill), -1).max(axis=1)


def test_slab_jones_normal_incidence_is_the_textbook_retarder():
    """At normal incidence the Berreman slab reduces to R·diag(e^{ik0L(n_e−n_m)}, e^{ik0L(n_o−n_m)})·Rᵀ
    (up to the ~1e-3 Fresnel multiple reflections it includes)."""
    a = 0.5
    d = np.array([0.0, math.sin(a), math.cos(a)])
    eps = NO ** 2 * np.eye(3) + (NE ** 2 - NO ** 2) * np.outer(d, d)
    k0 = 2 * math.pi / LAM
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    ref = r @ np.diag([np.exp(1j * k0 * (NE - NM)), np.exp(1j * k0 * (NO - NM))]) @ r.T
    j = slab_jones(eps, 1.0, NM, LAM, (0.0, 0.0))
    print(f"\n|J_berreman − J_retarder| = {np.abs(j - ref).max():.2e}")
    assert np.abs(j - ref).max() < 3e-3
    # isotropic slab at oblique incidence: a pure phase, exp(i k0 L (sqrt(n² − β²) − sqrt(n_m² − β²)))
    f = (0.5 / LAM, 0.0)
    j = slab_jones(1.5 ** 2 * np.eye(3), 1.0, NM, LAM, f)
    ph = k0 * (math.sqrt(1.5 ** 2 - 0.25) - math.sqrt(NM ** 2 - 0.25))
    assert abs(j[0, 1]) < 1e-3 and abs(j[1, 0]) < 1e-3
    assert abs(j[0, 0] - np.exp(1j * ph)) < 3e-3 and abs(j[1, 1] - np.exp(1j * ph)) < 3e-3


@pytest.mark.parametrize("method", ["ssnp", "bpm"])
def test_multislice_against_exact_uniaxial_slab(method):
    """Own multi-slice vs the exact slab: exact at normal incidence, a growing error with obliquity
    (measured ssnp 1.2e-3 / 0.012 / 0.025, bpm 6e-4 / 0.013 / 0.028 at β 0, 0.36, 0.5; on a 64² grid up
    to 0.15 at β 0.94)."""
    dr = _slab()
    ill = _ills(dr.shape[1], betas=(0.0, 0.36, 0.5))
    err = _slab_errors(propagate_vectorial(_phantom(dr), LAM, ill, NA, device="cpu", method=method), dr, ill)
    print(f"\n{method}: max|J − J_exact| per illumination {np.round(err, 4)}")
    assert err[0] < 3e-3
    assert err[1] < 0.02
    assert err[2] < 0.04


@needs_dtmm
def test_dtmm_against_exact_uniaxial_slab():
    """dtmm (2×2, diffraction 1) vs the exact slab, director tilted out of the plane: measured
    < 7e-3 up to β 0.94 in the 64² check; here 7e-4 / 2.1e-3 / 2.2e-3 at β 0, 0.36, 0.63."""
    dr = _slab(tilt=0.4)
    ill = _ills(dr.shape[1])
    err = _slab_errors(dtmm_jones(dr, LAM, ill, NA), dr, ill)
    print(f"\ndtmm: max|J − J_exact| per illumination {np.round(err, 4)}")
    assert np.all(err < 0.012)


def _rel(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Relative L2 distance of J − I inside ``mask``, per illumination."""
    eye = np.eye(2)[None, :, :, None, None]
    da, db = (a - eye)[..., mask], (b - eye)[..., mask]
    return np.linalg.norm((da - db).reshape(len(a), -1), axis=1) / np.linalg.norm(db.reshape(len(a), -1), axis=1)


def test_isotropic_limit_against_mie():
    """An isotropic sphere (r 1.2 µm, n 1.50 in 1.45): the multi-slice co-polarised fields against
    exact scalar Mie, and no cross-polarised field (measured SSNP relative L2 0.005; dtmm, not
    tested here, 0.036 on r 1.5 µm)."""
    shape, r = 48, 1.2
    dr = make_droplet((32, shape, shape), DX, radius_um=r, n_o=1.50, n_e=1.50, medium_index=NM,
                      configuration="radial")
    ill = _ills(shape)
    j = propagate_vectorial(_phantom(dr), LAM, ill, NA, device="cpu", method="ssnp")
    mie = mie_fields(r, 1.50, NM, LAM, (shape, shape), DX, ill, na=NA)
    ref = np.zeros_like(j)
    ref[:, 0, 0] = mie
    ref[:, 1, 1] = mie
    yy, xx = np.meshgrid(*(2 * [(np.arange(shape) - shape // 2) * DX]), indexing="ij")
    rel = _rel(j, ref, xx ** 2 + yy ** 2 < r ** 2)
    print(f"\nSSNP vs Mie relative L2 per illumination {np.round(rel, 4)}")
    assert np.all(rel < 0.03)
    assert np.abs(j[:, 0, 1]).max() < 1e-3 and np.abs(j[:, 1, 0]).max() < 1e-3


@needs_dtmm
def test_own_multislice_against_dtmm_on_a_droplet():
    """Small bipolar droplet (r 1.2 µm, n_o 1.53, n_e 1.57 in 1.45, axis tilted): own SSNP vs dtmm,
    relative L2 of J − I inside the droplet's shadow, per illumination (measured 0.021 / 0.045 / 0.045
    at β 0, 0.36, 0.63; on r 1.5 µm, 64², 9 illuminations: 0.015 at normal incidence rising to
    0.2 at β 0.94, 0.097 overall, retardance difference 0.16 rad rms of 1.24 rad)."""
    shape, r = 48, 1.2
    dr = make_droplet((28, shape, shape), DX, radius_um=r, n_o=NO, n_e=NE, medium_index=NM,
                      configuration="bipolar", axis=(0.2, 0.5, 1.0))
    ill = _ills(shape)
    own = propagate_vectorial(_phantom(dr), LAM, ill, NA, device="cpu", method="ssnp")
    ref = dtmm_jones(dr, LAM, ill, NA)
    yy, xx = np.meshgrid(*(2 * [(np.arange(shape) - shape // 2) * DX]), indexing="ij")
    rel = _rel(own, ref, xx ** 2 + yy ** 2 < r ** 2)
    print(f"\nSSNP vs dtmm relative L2 per illumination {np.round(rel, 4)}")
    assert rel[0] < 0.05
    assert np.all(rel < 0.15)
    # far from the droplet dtmm's field is the identity up to the scattered tail (measured 0.03)
    assert np.abs(ref[:, :, :, 2, 2] - np.eye(2)).max() < 0.06


@needs_dtmm
@pytest.mark.slow
@pytest.mark.parametrize("configuration", ["bipolar", "radial"])
def test_refined_dtt_on_a_dtmm_droplet(configuration):
    """Held-out small droplet from dtmm (r 1.6 µm, n_o 1.535, n_e 1.575 in 1.45, 25 illuminations, 48² at
    0.125 µm): the reconstruct–reproject correction (3 steps of 0.6) shrinks the Δn underestimate of
    first-order DTT and the background birefringence without losing the director. Measured with the
    object support (default ``support_fraction`` 0.2): bipolar Δn −32 % → −3 %, n_o error +0.014 →
    +0.003, background |Δn| 0.0051 → 0.0000, director 7.1° → 6.2°; radial Δn −40 % → −15 %, n_o
    +0.011 → +0.0015, background 0.0047 → 0.0000, 14.9° → 14.5° (without the support the background
    was 0.0032 and 0.0030: the bound below fails then)."""
    from bench_birefringence_dtmm import droplet_metrics

    from engine.birefringence import JonesFields, reconstruct_tensor
    from engine.birefringence.refine import refine_tensor
    from engine.metadata import MeasurementMetadata
    from engine.simulate.holograms import illumination_pattern

    dx, shape = 0.125, 48
    dr = make_droplet((28, shape, shape), dx, radius_um=1.6, n_o=1.535, n_e=1.575, medium_index=NM,
                      configuration=configuration, axis=(0.2, 0.6, 1.0))
    ill = snap_illuminations(illumination_pattern(25, 1.0, LAM), (shape, shape), (dx, dx))
    jones = JonesFields(field=dtmm_jones(dr, LAM, ill, NA), illumination_per_um=ill, pixel_size_um=dx)
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=dx)
    plain = droplet_metrics(reconstruct_tensor(jones, md, shape_z=32, device="cpu").epsilon, dr, 0.3, 0.8)
    tomo = refine_tensor(jones, md, shape_z=32, iterations=3, step=0.6, keep_director=False, device="cpu")
    ref = droplet_metrics(tomo.epsilon, dr, 0.3, 0.8)
    print(f"\n{configuration}: DTT {plain}\nrefined {ref}\nmisfit {tomo.timings_s['misfit']}")
    assert tomo.method == "dtt-refined"
    assert np.all(np.diff(tomo.timings_s["misfit"]) < 0)  # the iteration converges
    assert abs(ref["dn_rel_err"]) < 0.6 * abs(plain["dn_rel_err"])
    assert abs(ref["dn_rel_err"]) < 0.25
    assert abs(ref["n_o_err"]) < 0.006
    assert ref["bg_abs_dn"] < 0.8 * plain["bg_abs_dn"]
    assert ref["bg_abs_dn"] < 0.002  # the isotropic background outside the object support
    assert ref["director_deg"] < plain["director_deg"] + 2.0


@needs_dtmm
def test_hologram_path_returns_dtmm_jones_fields(tmp_path):
    """The benchmark's hologram path (dtmm Jones fields → polarised off-axis holograms → measurement
    folder) read back by the pipeline's Jones retrieval gives dtmm's fields: same frame (J[out, in],
    x/y), sign (a positive phase in the droplet) and illuminations. Measured: relative L2 of the
    retrieved J − I against dtmm's 0.03–0.06 per element at normal and mid incidence, 0.10–0.16 at
    the steepest (64² camera: a 6.4 µm field of view); 0.02–0.05 throughout at 256²."""
    from bench_birefringence_dtmm import hologram_case

    from engine.birefringence.jones import jones_fields
    from engine.simulate import holograms as holo
    from engine.store.folders import load_measurement

    case = {"radius_um": 1.2, "n_o": NO, "n_e": NE, "medium_index": NM, "wavelength_um": LAM,
            "configuration": "bipolar", "axis": (0.2, 0.6, 0.8)}
    folder, setup = hologram_case(case, 7, 64, 0.1, 0.2, None, tmp_path)
    meas = load_measurement(folder)
    assert len(meas.metadata.frames) == 4 * 25 and (folder / "truth.h5").is_file()
    js = jones_fields(meas, device="cpu")
    ill = np.asarray(meas.metadata.illumination_per_um)
    sim = setup.phantom_shape(2 * case["radius_um"] + 2.0)
    dr = make_droplet(sim, 0.2, radius_um=1.2, n_o=NO, n_e=NE, medium_index=NM, configuration="bipolar",
                      axis=case["axis"])
    truth = holo._resample(dtmm_jones(dr, LAM, ill, NA), ill, 0.2, (64, 64), 0.1)
    yy, xx = np.meshgrid(*(2 * [(np.arange(64) - 32) * 0.1]), indexing="ij")
    shadow = xx ** 2 + yy ** 2 < 1.0 ** 2
    eye = np.eye(2)[None, :, :, None, None]
    rel = [np.linalg.norm((js.field - truth)[n, o, i][shadow]) / np.linalg.norm((truth - eye)[n, o, i][shadow])
           for n in (0, 12, 24) for o in range(2) for i in range(2)]
    print(f"\nretrieved vs dtmm relative L2 of J − I {np.round(rel, 3)}")
    assert np.allclose(js.illumination_per_um, ill)
    assert max(rel[:8]) < 0.1 and max(rel) < 0.25
    assert np.median(np.angle(js.field[0, 0, 0][shadow])) > 0.3  # n > n_m: positive phase
