"""A defect's trace in the retrieved field against the camera noise (issue #19): the twin measurements
of the simulator and :func:`engine.training.screening_severity.defect_trace`."""

from __future__ import annotations

import numpy as np
import pytest

from engine.training.screening_severity import defect_trace


def _noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    return sigma * (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2)


def _fields(n: int = 4, size: int = 48, sigma: float = 0.02, seed: int = 0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    sample = np.exp(1j * 1.5 * np.exp(-(x ** 2 + y ** 2) / 60.0))
    clean = np.repeat(sample[None], n, axis=0)
    noise_a, noise_b = _noise(rng, clean.shape, sigma), _noise(rng, clean.shape, sigma)
    return clean, clean + noise_a, clean + noise_b


def test_no_defect_no_trace_and_the_noise_is_measured():
    _, twin, renoised = _fields(sigma=0.02)
    tr = defect_trace(twin, twin, renoised)
    assert np.all(tr.global_dnr == 0) and np.all(tr.local_dnr == 0) and np.all(tr.relative_rms == 0)
    np.testing.assert_allclose(tr.noise_rms, 0.02, rtol=0.05)


def test_a_global_phase_offset_is_not_a_defect_but_a_blank_frame_is():
    _, twin, renoised = _fields()
    acquired = twin.copy()
    acquired[0] *= np.exp(0.7j)  # the pipeline removes a field's offset
    acquired[1] = renoised[1] * 0.02  # blank: hardly any object beam
    tr = defect_trace(acquired, twin, renoised)
    assert tr.global_dnr[0] < 1e-20
    assert tr.global_dnr[1] > 1000 and tr.relative_rms[1] > 0.9


def test_a_small_speck_is_local_and_a_faint_ramp_is_global():
    _, twin, renoised = _fields(sigma=0.02)
    acquired = twin.copy()
    acquired[0, 20:23, 20:23] *= 0.3  # a 3x3 opaque speck: plain to see, little energy
    acquired[1] *= 1 + 0.01 * np.linspace(-1, 1, twin.shape[-1])[None, :]  # a 1 % ramp spread everywhere
    tr = defect_trace(acquired, twin, renoised)
    assert tr.local_dnr[0] > 30 * tr.global_dnr[0] and tr.local_dnr[0] > 50
    assert tr.global_dnr[1] < 0.5 and tr.local_dnr[1] < 3


def test_bad_shapes_are_named():
    _, twin, renoised = _fields()
    with pytest.raises(ValueError, match="twin"):
        defect_trace(twin, twin[:2], renoised)
    with pytest.raises(ValueError, match="acquired"):
        defect_trace(np.abs(twin), twin, renoised)


@pytest.mark.slow
def test_the_twin_measurement_differs_only_where_a_defect_was_drawn():
    from engine.simulate import holograms, phantoms
    from engine.simulate.defects import EXTRA_DEFECT_TYPES, EXTRA_IMPERFECTION_TYPES

    setup = holograms.Setup(n_angles=9, image_shape=(64, 64), na_condenser=1.0)
    ph = phantoms.make_phantom("beads", setup.phantom_shape(3.0), setup.voxel_size_um, setup.medium_index,
                               np.random.default_rng(0))
    kw = dict(defect_rate=0.5, defect_types=EXTRA_DEFECT_TYPES, device="cpu", imperfection_rate=0.5,
              imperfection_types=EXTRA_IMPERFECTION_TYPES)
    sim = holograms.simulate_measurement(ph, setup, 5, **kw)
    twin = holograms.simulate_measurement(ph, setup, 5, apply_defects=False, **kw)
    new = holograms.simulate_measurement(ph, setup, 5, apply_defects=False, noise_draw=1, **kw)
    assert twin.defect_types == sim.defect_types and twin.imperfections == sim.imperfections
    for k, kind in enumerate(sim.defect_types):
        same = np.array_equal(sim.measurement.holograms[k], twin.measurement.holograms[k])
        assert same != bool(kind), (k, kind)  # identical exactly where no defect was drawn
        assert not np.array_equal(new.measurement.holograms[k], twin.measurement.holograms[k])
    np.testing.assert_array_equal(sim.measurement.backgrounds, twin.measurement.backgrounds)


def test_the_simulator_records_the_parameters_each_defect_was_drawn_with():
    from engine.simulate import holograms, phantoms
    from engine.simulate.defects import OBSTRUCTION_NOISY_UM2

    setup = holograms.Setup(n_angles=9, image_shape=(64, 64), na_condenser=1.0, focus_offset_um=0.5)
    ph = phantoms.make_phantom("beads", setup.phantom_shape(3.0), setup.voxel_size_um, setup.medium_index,
                               np.random.default_rng(0))
    kw = dict(defect_rate=0.7, defect_types=("obstruction", "parasitic-fringes"), device="cpu")
    sim = holograms.simulate_measurement(ph, setup, 3, **kw)
    kinds = set(sim.defect_types) - {""}
    assert kinds == {"obstruction", "parasitic-fringes"} and len(sim.defect_info) == len(sim.defect_types)
    for kind, info in zip(sim.defect_types, sim.defect_info):
        if kind == "obstruction":
            assert info["energy_um2"] >= OBSTRUCTION_NOISY_UM2 * (1 - 1e-9)
            assert info["mode"] in ("amplitude", "phase", "both") and info["particles"] >= 1
        elif kind == "parasitic-fringes":  # its own parameters only, not the focus offset's defocus
            assert 0.05 <= info["amplitude"] <= 0.45 and "source" in info and "defocus_um" not in info
        else:
            assert info == {}
    twin = holograms.simulate_measurement(ph, setup, 3, apply_defects=False, **kw)
    assert twin.defect_types == sim.defect_types and all(info == {} for info in twin.defect_info)
