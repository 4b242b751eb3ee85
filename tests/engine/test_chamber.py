"""The chamber's residual coherent noise: calibration, geometry (shadows move with the illumination),
pupil limit, per-frame speckle, and its passage through the simulator and the retrieval."""

import numpy as np
import pytest

from engine.holography.propagate import propagate
from engine.simulate.chamber import ChamberResidue, ChamberResidueModel
from engine.simulate.defects import Particle, _particle_screen

LAM, NM, NA, PX = 0.532, 1.337, 1.2, 0.1


def _model(rms=0.1, near=0.5, seed=3, shape=(96, 96)):
    return ChamberResidueModel(ChamberResidue(rms, near, seed), shape, PX, LAM, NM, NA)


@pytest.mark.parametrize("near", [0.0, 0.5, 1.0])
def test_residue_rms_is_the_requested_one_at_normal_incidence(near):
    t = _model(rms=0.1, near=near).transmission((0.0, 0.0), frame=0)
    rms = float(np.sqrt(np.mean(np.abs(t - 1) ** 2)))
    assert rms == pytest.approx(0.1, rel=0.2)


def test_no_residue_is_the_identity_and_bad_parameters_are_refused():
    ts, tb = _model(rms=0.0).transmissions((0.5, 0.2), 4)
    assert np.all(ts == 1) and np.all(tb == 1)
    with pytest.raises(ValueError):
        ChamberResidue(rms=-0.1)
    with pytest.raises(ValueError):
        ChamberResidue(rms=0.1, near_fraction=1.5)


def test_a_defocused_particle_shadow_moves_by_d_times_the_illumination_slope():
    """A particle d µm before the focal plane, lit at (f_x, 0), shows its rings centred at x = d·f_x/f_z."""
    m = _model(shape=(128, 128))
    screen = _particle_screen(Particle((0.0, 0.0), 0.6, "dust", 0.8, 0.0), m.big, np.random.default_rng(0)) - 1
    d, fx = 6.0, 1.0  # µm, cycles/µm (on the grid: 1 / (128 × 0.1 µm) steps)
    fz = np.sqrt((NM / LAM) ** 2 - fx ** 2)
    x = ((np.arange(128) - 64) * PX)[None, :]
    centroids = []
    for f in ((0.0, 0.0), (fx, 0.0)):
        w = np.abs(m._propagated(screen, d, f)) ** 2
        centroids.append(float(np.sum(w * x) / np.sum(w)))
    assert centroids[0] == pytest.approx(0.0, abs=0.05)
    assert centroids[1] == pytest.approx(d * fx / fz, rel=0.1)


def test_residue_is_pupil_limited_and_far_speckle_changes_between_frames():
    m = _model(rms=0.1, near=0.3, shape=(96, 96))
    a, b = m.transmission((0.3, 0.0), 1), m.transmission((0.3, 0.0), 2)
    assert np.sqrt(np.mean(np.abs(a - b) ** 2)) > 0.05  # a new far draw per frame
    ts1, tb1 = m._near((0.3, 0.0))
    ts2, tb2 = m._near((0.3, 0.0))
    assert np.array_equal(ts1, ts2) and np.array_equal(tb1, tb2)  # the near residue is fixed
    spec = np.abs(np.fft.fft2(ts1 - 1)) ** 2  # near part, seen through the tilted wave's pupil (f + ν)
    v = np.fft.fftfreq(96, d=PX)
    outside = (v[:, None] ** 2 + (v[None, :] + 0.3) ** 2) > (NA / LAM * 1.05) ** 2
    assert spec[outside].sum() < 0.01 * spec.sum()  # (the crop of the periodic chamber leaks a little)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float(abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_simulated_measurement_carries_the_residue_and_the_focus_offset():
    """Through holograms and retrieval: a residue raises the background texture; a focus offset is undone by
    refocusing the retrieved field back."""
    from engine.holography.retrieval import retrieve_fields
    from engine.simulate import holograms, phantoms

    texture = []
    for rms, dz in ((0.0, 0.0), (0.2, 0.0), (0.0, 1.5)):
        setup = holograms.Setup(image_shape=(96, 96), n_angles=2, chamber_residue_rms=rms, focus_offset_um=dz)
        ph = phantoms.make_phantom("beads", setup.phantom_shape(4.0), setup.voxel_size_um, setup.medium_index,
                                   np.random.default_rng(1))
        sim = holograms.simulate_measurement(ph, setup, 5)
        md = sim.measurement.metadata
        u = np.asarray(retrieve_fields(sim.measurement.holograms, sim.measurement.backgrounds, md, device="cpu",
                                       unwrap=False).field)[0]
        la = np.log(np.abs(u / sim.fields_true[0])[16:80, 16:80])  # what is not the sample
        texture.append(float(np.std(la)))
        if dz:
            back = np.asarray(propagate(u, -dz, md.pixel_size_um, md.wavelength_um, md.medium_index, device="cpu"))
            c_back, c_u = (_correlation(a, sim.fields_true[0]) for a in (back, u))
            assert c_back > 0.95 and c_back > c_u + 0.02
    assert texture[1] > 2 * texture[0]  # log-amplitude RMS: the residue (~rms / √2) over the camera noise


def test_family_specs_with_chamber_keep_every_other_parameter():
    from dataclasses import replace

    from engine.training.screening_families import cross_family_specs, family_specs

    plain, wet = family_specs(40, 11), family_specs(40, 11, chamber=True)
    assert [replace(w, chamber_rms=0.0, chamber_near_fraction=0.5, focus_offset_um=0.0) for w in wet] == plain
    rms = np.array([w.chamber_rms for w in wet])
    assert np.all((rms == 0) | ((rms >= 0.02) & (rms <= 0.35))) and 0 < np.mean(rms == 0) < 0.4
    assert all(abs(w.focus_offset_um) <= 2.5 for w in wet) and any(abs(w.focus_offset_um) > 0.5 for w in wet)
    cross = cross_family_specs(20, 7, chamber=True)
    assert [replace(c, chamber_rms=0.0, chamber_near_fraction=0.5, focus_offset_um=0.0) for c in cross] == \
        cross_family_specs(20, 7)
    assert len({c.chamber_rms for c in cross}) > 10


def test_wide_na_specs_change_only_the_na():
    from dataclasses import replace

    from engine.training.screening_families import family_specs

    plain, wide = family_specs(30, 5, chamber=True), family_specs(30, 5, chamber=True, wide_na=True)
    assert [replace(w, na=p.na) for w, p in zip(wide, plain)] == plain
    na = np.array([w.na for w in wide])
    assert na.min() >= 0.6 and na.max() <= 1.25 and np.ptp(na) > 0.4
    assert min(2 * 0.1 * na / 0.532) < 0.3  # pupils sampled as coarsely as the real holograms' (0.23, 0.32)


def test_large_cell_specs_are_deep_cells():
    from engine.training.screening_families import family_specs

    specs = family_specs(12, 8, chamber=True, wide_na=True, large_cells=True)
    assert all(s.kind == "cells" and s.depth_um == 14.0 for s in specs)
    assert [s.na for s in specs] == [s.na for s in family_specs(12, 8, chamber=True, wide_na=True)]


def test_no_background_specs_and_the_instrument_pattern_they_keep():
    """``--no-background``: the same measurements retrieved with a synthesised background keep the
    beams' envelope and aberrations (qpformat's real files hold no background, issue #19)."""
    from dataclasses import replace

    from engine.screening.domain import training_domain
    from engine.training.screening_families import family_specs, simulate_family_crops

    specs = family_specs(12, 9, chamber=True, wide_na=True, no_background=True)
    assert [replace(s, synthetic_background=False) for s in specs] == family_specs(12, 9, chamber=True, wide_na=True)
    assert all(s.synthetic_background and s.setup_name.endswith("-nobg") for s in specs)
    px, lam = np.full(12, 0.1), np.full(12, 0.532)
    assert training_domain([s.setup_name for s in specs], px, lam)["background"] == "any"
    assert training_domain([replace(s, synthetic_background=False).setup_name for s in specs], px, lam)["background"] \
        == "measured"

    spec = replace(specs[0], n_angles=45, defect_rate=0.0, imperfection_rate=0.0, chamber_rms=0.0, focus_offset_um=0.0)
    measured = simulate_family_crops(replace(spec, synthetic_background=False)).fields
    synthetic = simulate_family_crops(spec).fields
    assert measured.shape == synthetic.shape

    # the two differ by the measured background's field alone: the instrument's own pattern
    pattern = synthetic / measured
    pattern *= np.exp(-1j * np.angle(pattern.mean(axis=(-2, -1), keepdims=True)))
    phase_rms = np.angle(pattern).std(axis=(-2, -1))
    log_amp_rms = np.log(np.abs(pattern)).std(axis=(-2, -1))
    assert phase_rms.mean() > 0.2 and log_amp_rms.mean() > 0.02  # measured: 0.34 rad and 0.039


def test_wide_pixel_specs_span_crop_widths_and_keep_the_side_band_on_the_camera():
    """``--wide-pixel``: camera pixels 0.07–0.15 µm, so the 128-pixel crop spans 9–19 µm of the
    sample (qpformat's real crop 10.8 µm, ours otherwise always 12.8 µm), with the pupil at
    0.2–0.47 of Nyquist and every camera an even number of 0.1 µm simulation voxels across."""
    from dataclasses import replace

    from engine.screening.domain import training_domain
    from engine.simulate.holograms import Setup
    from engine.training.screening_families import family_specs, simulate_family_crops

    specs = family_specs(60, 11, chamber=True, wide_na=True, wide_pixel=True)
    px = np.array([s.pixel_um for s in specs])
    assert px.min() >= 0.0695 and px.max() <= 0.1505 and px.min() < 0.08 and px.max() > 0.14
    frac = np.array([2 * s.pixel_um * s.na / 0.532 for s in specs])
    assert frac.min() >= 0.2 - 1e-3 and frac.max() <= 0.47 + 1e-3 and frac.min() < 0.25
    for s in specs:
        n = s.image_shape[0]
        assert n >= 160 and n % 2 == 0 and n * s.pixel_um >= 16.0 - 1e-6
        cam = Setup(pixel_size_um=s.pixel_um, image_shape=s.image_shape, sim_pixel_um=0.1, na_objective=s.na,
                    na_condenser=0.92 * s.na)
        assert cam.sim_shape_yx[0] == round(n * s.pixel_um / 0.1)  # raises unless the grids match
    assert 0.3 < np.mean([s.synthetic_background for s in specs]) < 0.7
    assert 0.3 < np.mean([s.depth_um == 14.0 for s in specs]) < 0.7
    names = [s.setup_name for s in specs]
    dom = training_domain(names, px, np.full(len(specs), 0.532))
    assert dom["pupil_fraction"][0] == pytest.approx(frac.min(), abs=0.01)
    assert dom["pupil_fraction"][1] == pytest.approx(frac.max(), abs=0.01)

    coarse = min((s for s in specs if s.pixel_um > 0.13), key=lambda s: s.n_angles)
    cs = simulate_family_crops(replace(coarse, defect_rate=0.0, imperfection_rate=0.0))
    assert cs.fields.shape[1:] == (128, 128)
    assert np.allclose(cs.pixel_size_um, coarse.pixel_um) and cs.setup[0] == coarse.setup_name
    assert np.isfinite(cs.fields).all() and not cs.noisy.any()


def test_strong_cell_specs_and_the_contrast_that_reaches_their_peak_phase():
    """``--strong-cells``: large, granular cells whose phase reaches 3.5–6.5 rad (the real HL60
    cells of tests/data: 4–5 rad), with the other sets' defect rates, half without a background.
    The contrast scaling gives the requested peak phase, within its cap, and leaves the medium."""
    from engine.simulate.phantoms import make_phantom
    from engine.training.screening_families import (MAX_CONTRAST_SCALE, STRONG_PEAK_PHASE_RAD, _with_peak_phase,
                                                    _with_texture, family_specs)

    specs = family_specs(40, 12, chamber=True, wide_na=True, strong_cells=True)
    plain = family_specs(40, 12, chamber=True, wide_na=True)
    assert [(s.na, s.defect_rate, s.imperfection_rate, s.seed) for s in specs] == \
        [(s.na, s.defect_rate, s.imperfection_rate, s.seed) for s in plain]
    peak = np.array([s.peak_phase_rad for s in specs])
    assert peak.min() >= STRONG_PEAK_PHASE_RAD[0] and peak.max() <= STRONG_PEAK_PHASE_RAD[1] and np.ptp(peak) > 2
    assert all(s.kind == "cells" and s.depth_um == 14.0 and s.textured for s in specs)
    assert 0.3 < np.mean([s.synthetic_background for s in specs]) < 0.7

    ph = make_phantom("cells", (40, 64, 64), (0.25, 0.2, 0.2), 1.337, np.random.default_rng(3))

    def peak_phase(p) -> float:
        return 2 * np.pi / 0.532 * float((p.ri - p.medium_index).sum(axis=0).max()) * p.voxel_size_um[0]

    base = peak_phase(ph)
    target = min(1.5, MAX_CONTRAST_SCALE) * base
    assert peak_phase(_with_peak_phase(ph, target, 0.532)) == pytest.approx(target, rel=1e-3)
    capped = _with_peak_phase(ph, 10 * base, 0.532)
    assert peak_phase(capped) == pytest.approx(MAX_CONTRAST_SCALE * base, rel=1e-3)
    assert peak_phase(_with_peak_phase(ph, 0.5 * base, 0.532)) == pytest.approx(base, rel=1e-3)  # never weaker
    outside = ph.ri == np.float32(ph.medium_index)
    assert np.all(capped.ri[outside] == ph.ri[outside])

    tex = _with_texture(ph, np.random.default_rng(4))
    change = tex.ri - ph.ri
    assert np.all(change[outside] == 0) and 0.002 < change[~outside].std() < 0.012
