"""Wide defect families of the simulator, calibration and the generalisation protocol (issue #19)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.metrics import expected_calibration_error
from engine.screening.crops import CropSet
from engine.simulate import defects as D
from engine.training.screening_families import (families_of, family_catch_rates, fit_temperature,
                                                 protocol_splits, without_family)


def _ctx(n: int = 128, seed: int = 0) -> D.FrameContext:
    ctx = D.FrameContext((n, n), 0.1, 0.532, 1.337, 1.2, (0.3, -0.2))
    ctx.measurement_seed = seed
    return ctx


def _radial(a: np.ndarray, ctx: D.FrameContext, centre=(0.0, 0.0)) -> np.ndarray:
    r = np.hypot(ctx.x - centre[0], ctx.y - centre[1])
    k = np.round(r / ctx.pixel_size_um).astype(int)
    return np.bincount(k.ravel(), a.ravel()) / np.maximum(np.bincount(k.ravel()), 1)


# --------------------------------------------------------------------------- families
def test_every_defect_type_has_exactly_one_family():
    for kind in D.ALL_DEFECT_TYPES:
        assert sum(kind in v for v in D.DEFECT_FAMILIES.values()) == 1, kind
        assert D.family_of(kind) in D.DEFECT_FAMILIES
    assert D.family_of("") == ""
    with pytest.raises(ValueError):
        D.family_of("coffee")


def test_dust_in_focus_is_a_shadow_and_out_of_focus_has_airy_rings():
    ctx = _ctx()
    dust = [D.Particle((0.0, 0.0), 1.0, "dust", absorption=1.0)]
    t0 = np.abs(D.obstruction_transmission(dust, 0.0, ctx))
    prof0 = _radial(t0, ctx)
    assert prof0[:6].max() < 0.2 and abs(prof0[20:50].mean() - 1) < 0.03  # dark disc, flat around it
    for dz in (8.0, 25.0):
        prof = _radial(np.abs(D.obstruction_transmission(dust, dz, ctx)), ctx)[:60]
        # rings: |t| − 1 changes sign again and again around the shadow, brighter than 1 in places
        dev = prof - 1
        signs = np.sign(dev[np.abs(dev) > 0.02])
        assert np.count_nonzero(np.diff(signs)) >= 3, dz
        assert prof.max() > 1.05 and prof.min() < 0.9
    # 3 µm behind a disc: the bright Arago-Poisson spot in the middle of the shadow
    assert _radial(np.abs(D.obstruction_transmission(dust, 3.0, ctx)), ctx)[0] > 1.5


def test_phase_only_obstruction_keeps_amplitude_in_focus_but_not_out_of_focus():
    ctx = _ctx()
    bubble = [D.Particle((0.5, -0.3), 2.0, "bubble", absorption=0.0, phase_rad=-2.0)]
    t = D.obstruction_transmission(bubble, 0.0, ctx)
    inside = np.hypot(ctx.x - 0.5, ctx.y + 0.3) < 1.5
    assert np.median(np.abs(np.abs(t[inside]) - 1)) < 0.05
    assert np.angle(t[64 - 3, 64 + 5]) == pytest.approx(-2.0, abs=0.2)  # the centre's phase
    t_far = D.obstruction_transmission(bubble, 15.0, ctx)
    assert np.abs(t_far).std() > 0.1  # propagation turns the phase into intensity


def test_obstruction_energy_gate_separates_noisy_from_faint():
    for s in range(12):
        ctx = _ctx(seed=s)
        obj = np.ones(ctx.shape, complex)
        out = D.apply_defect("obstruction", obj, obj, ctx, np.random.default_rng(s))
        assert ctx.info["energy_um2"] >= D.OBSTRUCTION_NOISY_UM2 * 0.999
        assert not np.allclose(out, obj)
        ctx2 = _ctx(seed=s)
        D.apply_imperfection("faint-obstruction", obj, ctx2, np.random.default_rng(100 + s))
        assert ctx2.info["energy_um2"] <= D.OBSTRUCTION_CLEAN_UM2 * 1.001


def test_obstructions_span_sizes_focus_and_modes():
    seen_modes, defocus, counts = set(), [], []
    for s in range(60):
        ctx = _ctx()
        D.apply_defect("obstruction", np.ones(ctx.shape, complex), None, ctx, np.random.default_rng(s))
        seen_modes.add(ctx.info["mode"])
        defocus.append(abs(ctx.info["defocus_um"]))
        counts.append(ctx.info["particles"])
    assert seen_modes == {"amplitude", "phase", "both"}
    assert min(defocus) < 0.3 and max(defocus) > 20
    assert min(counts) == 1 and max(counts) >= 6


def test_parasitic_fringes_fixed_share_geometry_and_moving_do_not():
    fixed, moving = [], []
    for s in range(40):
        ctx = _ctx(seed=7)
        obj = np.ones(ctx.shape, complex)
        D.apply_defect("parasitic-fringes", obj, obj, ctx, np.random.default_rng(s))
        key = (round(ctx.info["frequency_per_um"], 9), round(ctx.info["angle_rad"], 9))
        (moving if ctx.info["moving"] else fixed).append(key)
        assert 0.05 <= ctx.info["amplitude"] <= 0.45
    assert len(set(fixed)) == 1 and len(fixed) > 3
    assert len(set(moving)) == len(moving) > 3
    periods = [1 / f for f, _ in moving]
    assert max(periods) / min(periods) > 3  # wide range of periods


def test_parasitic_fringes_show_as_fringes_in_the_field():
    ctx = _ctx(seed=3)
    obj = np.ones(ctx.shape, complex)
    out = D.apply_defect("parasitic-fringes", obj, obj, ctx, np.random.default_rng(5))
    spec = np.abs(np.fft.fft2(out - out.mean()))
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128, 0.1), np.fft.fftfreq(128, 0.1)))
    assert f.ravel()[np.argmax(spec)] == pytest.approx(ctx.info["frequency_per_um"], abs=0.2)


def test_camera_defects_act_on_the_image():
    img = np.full((128, 128), 1000, np.uint16)
    for kind in ("hot-pixels", "row-noise", "partial-saturation"):
        ctx = _ctx()
        obj = np.ones(ctx.shape, complex)
        assert np.array_equal(D.apply_defect(kind, obj, obj, ctx, np.random.default_rng(1)), obj)
        out = ctx.apply_camera_effects(img, 12).astype(float)
        if kind == "hot-pixels":
            frac = np.mean(out > 1000)
            assert 0.002 < frac < 0.04 and out.max() > 0.35 * 4095
        elif kind == "row-noise":
            assert out.mean(axis=1).std() > 20 * out.mean(axis=0).std()
        else:
            assert 0.001 < np.mean(out == 4095) < 0.3 and np.mean(out < 1010) > 0.4  # clipped locally only
    ctx = _ctx()
    D.apply_imperfection("camera-mild", np.ones(ctx.shape, complex), ctx, np.random.default_rng(2))
    assert np.mean(ctx.apply_camera_effects(img, 12) != 1000) > 0.5  # mild row gain everywhere
    assert np.mean(ctx.apply_camera_effects(img, 12) > 1100) < 0.001  # few hot pixels


def test_low_snr_is_far_dimmer_than_the_clean_dim_frame():
    a, b = _ctx(), _ctx()
    D.apply_defect("low-snr", np.ones(a.shape, complex), None, a, np.random.default_rng(0))
    D.apply_imperfection("dim", np.ones(b.shape, complex), b, np.random.default_rng(0))
    assert a.shared_exposure_gain <= 1 / 50 and a.read_noise_gain >= 2
    assert 1 / 8 <= b.shared_exposure_gain <= 1 / 2


@pytest.mark.slow
def test_simulated_measurement_labels_every_new_family():
    from engine.simulate import holograms, phantoms

    setup = holograms.Setup(n_angles=13, image_shape=(96, 96), na_condenser=1.0)
    rng = np.random.default_rng(0)
    ph = phantoms.make_phantom("beads", setup.phantom_shape(3.0), setup.voxel_size_um, setup.medium_index, rng)
    types = D.EXTRA_DEFECT_TYPES
    sim = holograms.simulate_measurement(ph, setup, 3, defect_rate=0.5, defect_types=types, device="cpu",
                                         imperfection_rate=1.0, imperfection_types=D.EXTRA_IMPERFECTION_TYPES)
    ref = holograms.simulate_measurement(ph, setup, 3, device="cpu")
    got = [t for t in sim.defect_types if t]
    assert sorted(got) == sorted(types)  # each new type once (the first noisy frames cycle)
    assert sim.measurement.metadata.labels == ["noisy" if t else "clean" for t in sim.defect_types]
    for k, t in enumerate(sim.defect_types):
        assert bool(t) != bool(sim.imperfections[k])  # every clean frame got an imperfection here
        assert not np.array_equal(sim.measurement.holograms[k], ref.measurement.holograms[k])
    with pytest.raises(ValueError):
        holograms.simulate_measurement(ph, setup, 3, defect_rate=0.5, defect_types=("coffee",), device="cpu")


# --------------------------------------------------------------------------- calibration
def test_ece_is_zero_for_calibrated_scores_and_measures_overconfidence():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.random(p.size) < p).astype(np.uint8)
    assert expected_calibration_error(y, p) < 0.01
    # always 0.99 sure, right 90 % of the time: ECE = 0.09
    y2 = np.r_[np.ones(900), np.zeros(100)].astype(np.uint8)
    assert expected_calibration_error(y2, np.full(1000, 0.99)) == pytest.approx(0.09, abs=1e-9)
    # hand-computed: two bins
    y3 = np.array([1, 0, 0, 1])
    p3 = np.array([0.95, 0.05, 0.7, 0.6])  # conf .95 .95 .7 .6 ; correct 1 1 0 1
    want = 0.5 * abs(1 - 0.95) + 0.25 * abs(0 - 0.7) + 0.25 * abs(1 - 0.6)
    assert expected_calibration_error(y3, p3) == pytest.approx(want)
    with pytest.raises(ValueError):
        expected_calibration_error(y3, p3 + 1)


def test_temperature_scaling_recovers_an_overconfident_scale():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 20_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(np.uint8)
    t = fit_temperature(3.0 * z, y)
    assert t == pytest.approx(3.0, rel=0.08)
    p_raw = 1 / (1 + np.exp(-3 * z))
    p_cal = 1 / (1 + np.exp(-3 * z / t))
    assert expected_calibration_error(y, p_cal) < 0.3 * expected_calibration_error(y, p_raw)


# --------------------------------------------------------------------------- protocol
def _toy_set(n_meas: int = 20, per: int = 10) -> CropSet:
    rng = np.random.default_rng(0)
    kinds = ["", "obstruction", "parasitic-fringes", "hot-pixels", "low-snr", "dmd", "blank", "dust"]
    defect = [str(rng.choice(kinds)) for _ in range(n_meas * per)]
    m = n_meas * per
    return CropSet(fields=np.zeros((m, 4, 4), np.complex64), noisy=np.array([1 if d else 0 for d in defect], np.uint8),
                   measurement=np.repeat(np.arange(n_meas), per).astype(np.int32), defect=defect,
                   setup=["s"] * m, pixel_size_um=np.full(m, 0.1, np.float32),
                   wavelength_um=np.full(m, 0.5, np.float32))


def test_protocol_splits_keep_measurements_whole_and_lofo_drops_one_family():
    cs = _toy_set()
    tr, va, te = protocol_splits(cs, seed=4)
    assert len(tr) + len(va) + len(te) == len(cs)
    assert not (set(tr.measurement) & set(te.measurement)) and not (set(va.measurement) & set(te.measurement))
    lo = without_family(tr, "obstruction")
    fam = families_of(tr)
    assert "obstruction" not in set(families_of(lo))
    assert len(lo) == int(np.sum(fam != "obstruction"))  # dust and obstruction both gone, nothing else
    assert set(families_of(lo)) == set(fam) - {"obstruction"}
    with pytest.raises(ValueError):
        without_family(tr, "coffee")
    rates = family_catch_rates(np.where(cs.noisy > 0, 0.9, 0.1), families_of(cs))
    assert all(v.get("caught", v.get("kept")) == 1.0 for v in rates.values())


@pytest.mark.slow
def test_lofo_trains_without_the_family_and_tests_on_it():
    import torch

    from engine.training.screening_families import run_lofo

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cs = _toy_set(n_meas=12, per=6)
    cs.fields = np.exp(1j * rng.normal(0, 0.1, (len(cs), 128, 128))).astype(np.complex64)
    blank = np.array([d == "blank" for d in cs.defect])
    cs.fields[blank] *= 0.01  # a learnable signature
    tr, va, te = protocol_splits(cs, seed=1)
    lines: list[str] = []
    out = run_lofo(tr, va, te, families=["blank"], minutes=0.02, seed=0, device=torch.device("cpu"),
                   log=lines.append)
    assert set(out) == {"all", "blank"}
    assert out["all"]["train_frames"] == len(tr)
    assert out["blank"]["train_frames"] == len(tr) - int(np.sum(families_of(tr) == "blank"))
    assert 0.0 <= out["blank"]["left_out_caught"] <= 1.0
    assert out["blank"]["test"]["families"]["blank"]["n"] == int(np.sum(families_of(te) == "blank"))
    assert any("left-out family caught" in s for s in lines)
