"""Multiple-scattering (SSNP multi-slice) reconstruction, checked against exact Mie spheres.

Ground truth: :func:`engine.simulate.mie.mie_fields` (exact partial-wave fields) and, for the
forward model, also miepython's vector Mie amplitudes (``tests/benchmarks/_independent_mie.py``).
Numbers printed with ``-s`` are the ones quoted in the report of issue #21.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.metadata import MeasurementMetadata
from engine.progress import Cancelled, CancelToken
from engine.simulate.beam_propagation import snap_illuminations
from engine.simulate.mie import mie_fields
from engine.simulate.phantoms import make_bead
from engine.tomography import reconstruct
from engine.tomography.multislice import MultisliceModel, data_misfit, reconstruct_multislice

LAM, NM, NA, PX = 0.532, 1.337, 1.2, 0.1
N = 64


def _md(**kw) -> MeasurementMetadata:
    return MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=PX, **kw)


def _ring(n: int = 30, na_ill: float = 1.0, size: int = N) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ill = np.vstack([[0.0, 0.0], np.stack([np.cos(a), np.sin(a)], 1) * (na_ill / LAM)])
    return snap_illuminations(ill, (size, size), (PX, PX))


def _mean_inside(ri, radius):
    z, y, x = (((np.arange(n) - n // 2) * PX) for n in ri.shape)
    r = np.sqrt(z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2)
    return float(ri[r < radius - 0.3].mean())


def _axial_over_lateral(ri, n_sphere):
    zc, yc, xc = (n // 2 for n in ri.shape)
    half = NM + (n_sphere - NM) / 2
    return float((ri[:, yc, xc] > half).sum()) / float((ri[zc, yc, :] > half).sum())


# ------------------------------------------------------------------ forward model against exact Mie
def _forward_errors(radius, n_sphere, ill, model, reference, frame="lab", mean=False):
    """Phase and amplitude RMS (and with ``mean`` the mean phase) of the model minus ``reference``
    inside the sphere's disc, per illumination."""
    z = int(round(2 * radius / PX)) + 8
    ph = make_bead((z, N, N), (PX, PX, PX), NM, 0, radius_um=radius, index=n_sphere, centre_um=(0, 0, 0))
    m = MultisliceModel(ph.ri.shape, (PX, PX, PX), LAM, NM, NA, model=model, frame=frame, device="cpu")
    dn = torch.as_tensor(ph.ri - np.float32(NM))
    if frame == "illumination":
        m.set_support(dn)
    with torch.no_grad():
        u = m.fields(dn, ill).numpy()
    c = (np.arange(N) - N // 2) * PX
    disc = np.hypot(c[:, None], c[None, :]) <= radius
    dphi = np.angle(u / reference)[:, disc]
    damp = (np.abs(u) - np.abs(reference))[:, disc]
    out = np.sqrt(np.mean(dphi ** 2, axis=1)), np.sqrt(np.mean(damp ** 2, axis=1))
    return out + (dphi.mean(1),) if mean else out


ILLUM = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.6]])  # illumination NA 0, 0.53, 0.85


def _independent():
    pytest.importorskip("miepython")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _independent_mie import miepython_fields

    return miepython_fields


def test_ssnp_forward_model_matches_exact_mie_for_a_strong_sphere():
    """Silica r 1.5 µm (centre phase 4.4 rad): SSNP phase RMS ≤ 0.025 rad, amplitude RMS ≤ 0.025
    inside the sphere's disc, against both Mie codes; the tilt-corrected phase-screen BPM (same
    FFT count) is ≥ 3× worse at oblique illumination (why SSNP was chosen)."""
    ill = snap_illuminations(ILLUM, (N, N), (PX, PX))
    exact = mie_fields(1.5, 1.46, NM, LAM, (N, N), PX, ill, na=NA)
    indep = _independent()(1.5, 1.46, NM, LAM, (N, N), PX, ill, na=NA)
    for name, ref in (("mie", exact), ("miepython", indep)):
        ph, amp = _forward_errors(1.5, 1.46, ill, "ssnp", ref)
        ph_b, amp_b = _forward_errors(1.5, 1.46, ill, "bpm", ref)
        print(f"\nsilica vs {name}: SSNP phase {np.round(ph, 4)} amp {np.round(amp, 4)}; "
              f"BPM phase {np.round(ph_b, 4)} amp {np.round(amp_b, 4)}")
        assert np.all(ph < 0.025) and np.all(amp < 0.025), (ph, amp)
        assert np.all(ph_b[1:] > 3 * ph[1:]), (ph_b, ph)


def test_ssnp_forward_model_polystyrene_and_empty_volume():
    """Polystyrene r 1 µm (6 rad): phase RMS ≤ 0.07 rad up to illumination NA 0.53 (it grows at
    steeper angles: 0.14 rad at NA 0.85, 0.8 rad at NA 1.0: the SSNP model's own limit); an
    empty volume gives the unit field."""
    ill = snap_illuminations(ILLUM, (N, N), (PX, PX))
    exact = mie_fields(1.0, 1.59, NM, LAM, (N, N), PX, ill, na=NA)
    ph, amp = _forward_errors(1.0, 1.59, ill, "ssnp", exact)
    print(f"\npolystyrene: SSNP phase {np.round(ph, 4)} amp {np.round(amp, 4)}")
    assert np.all(ph[:2] < 0.07) and ph[2] < 0.2, ph
    m = MultisliceModel((6, 32, 32), (PX, PX, PX), LAM, NM, NA, device="cpu")
    u = m.fields(torch.zeros((6, 32, 32)), np.array([[0.3, -0.7]])).numpy()
    assert np.abs(u - 1).max() < 1e-5


STEEP = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.6], [1 / LAM, 0.0], [1.41, 1.41]])  # NA 0, .53, .85, 1.0, 1.06


def test_illumination_frame_removes_the_steep_light_deficit():
    """Marching along each illumination (volume resampled on a rotated grid) instead of along z:
    polystyrene r 1 µm at illumination NA 1.0 goes from a mean phase lag of ≈ 0.4 rad (phase RMS
    ≈ 0.4) to |mean| ≤ 0.05 rad at every angle, phase RMS ≤ 0.25 rad and under half the lab
    frame's at NA ≥ 1, amplitude RMS ≤ 0.12, against both Mie codes; silica stays within 0.05 rad
    RMS; an empty volume gives the unit field at oblique illuminations."""
    ill = snap_illuminations(STEEP, (N, N), (PX, PX))
    for radius, n_sphere, tol in ((1.0, 1.59, 0.25), (1.5, 1.46, 0.05)):
        refs = (("mie", mie_fields(radius, n_sphere, NM, LAM, (N, N), PX, ill, na=NA)),
                ("miepython", _independent()(radius, n_sphere, NM, LAM, (N, N), PX, ill, na=NA)))
        for name, ref in refs:
            ph, amp, mean = _forward_errors(radius, n_sphere, ill, "ssnp", ref, frame="illumination", mean=True)
            ph_lab, _, mean_lab = _forward_errors(radius, n_sphere, ill, "ssnp", ref, mean=True)
            print(f"\n{n_sphere} vs {name}: illumination frame phase RMS {np.round(ph, 3)} mean {np.round(mean, 3)} "
                  f"amp {np.round(amp, 3)}; lab frame RMS {np.round(ph_lab, 3)} mean {np.round(mean_lab, 3)}")
            assert np.all(ph < tol) and np.all(np.abs(mean) < 0.05) and np.all(amp < 0.12), (ph, mean, amp)
            if n_sphere > 1.5:
                assert np.all(mean_lab[3:] < -0.2) and np.all(ph_lab[3:] > 2 * ph[3:]), (mean_lab, ph_lab)
    m = MultisliceModel((6, 32, 32), (PX, PX, PX), LAM, NM, NA, frame="illumination", device="cpu")
    u = m.fields(torch.zeros((6, 32, 32)), np.array([[0.3, -0.7], [1.2, 1.1]])).numpy()
    assert np.abs(u - 1).max() < 1e-4


# ------------------------------------------------------------------ gradient
@pytest.mark.parametrize("model", ["ssnp", "bpm", "ssnp-illumination"])
def test_autograd_gradient_matches_finite_differences(model):
    rng = np.random.default_rng(1)
    shape = (6, 16, 16)
    model, _, frame = model.partition("-")
    m = MultisliceModel(shape, (PX, PX, PX), LAM, NM, NA, model=model, frame=frame or "lab", device="cpu")
    ill = np.array([[0.0, 0.0], [0.9, -0.6]])
    dn0 = torch.as_tensor(rng.uniform(0, 0.05, shape), dtype=torch.float32)
    with torch.no_grad():
        target = m.fields(torch.as_tensor(rng.uniform(0, 0.08, shape), dtype=torch.float32), ill)

    def loss(dn):
        return (m.fields(dn, ill) - target).abs().square().sum()

    x = dn0.clone().requires_grad_(True)
    loss(x).backward()
    g = x.grad.double()
    v = torch.as_tensor(rng.standard_normal(shape), dtype=torch.float32)
    eps = 1e-3
    with torch.no_grad():
        fd = (float(loss(dn0 + eps * v)) - float(loss(dn0 - eps * v))) / (2 * eps)
    ad = float((g * v.double()).sum())
    print(f"\n{model}: directional derivative autograd {ad:.5f}, finite difference {fd:.5f}")
    assert abs(ad - fd) < 0.01 * abs(fd), (ad, fd)
    # and single voxels (one inside the volume, one at the exit slice)
    for j in [(2, 8, 8), (5, 3, 12)]:
        e = torch.zeros(shape)
        e[j] = 1.0
        with torch.no_grad():
            fdj = (float(loss(dn0 + 2e-3 * e)) - float(loss(dn0 - 2e-3 * e))) / 4e-3
        assert abs(float(g[j]) - fdj) < 0.02 * abs(fdj) + 1e-3, (j, float(g[j]), fdj)


# ------------------------------------------------------------------ strong spheres from exact Mie
@pytest.mark.slow
def test_silica_bead_within_issue_tolerance_and_better_than_rytov():
    """Silica r 1.5 µm: the issue's tolerance (mean RI inside within 0.003, axial/lateral FWHM
    within 10 % of 1), closer than Rytov + non-negativity, and the data misfit falls."""
    ill = _ring()
    u = mie_fields(1.5, 1.46, NM, LAM, (N, N), PX, ill, na=NA).astype(np.complex64)
    ry = reconstruct(u, ill, _md(), shape_z=48, non_negativity=True, device="cpu")
    ms = reconstruct(u, ill, _md(), shape_z=48, method="multislice", non_negativity=True, device="cpu",
                     multislice={"iterations": 20})
    e_ry, e_ms = _mean_inside(ry.ri, 1.5) - 1.46, _mean_inside(ms.ri, 1.5) - 1.46
    el_ry, el_ms = _axial_over_lateral(ry.ri, 1.46), _axial_over_lateral(ms.ri, 1.46)
    mis_ry = data_misfit(MultisliceModel(ry.ri.shape, ry.voxel_size_um, LAM, NM, NA, device="cpu"),
                         ry.ri - NM, u, ill)
    print(f"\nsilica: rytov+nonneg err {e_ry:+.4f} z/x {el_ry:.2f} misfit {mis_ry:.4f}; multislice err "
          f"{e_ms:+.4f} z/x {el_ms:.2f} misfit {ms.misfit[0]:.4f} -> {ms.misfit[-1]:.4f} "
          f"({ms.timings_s['total']:.1f} s)")
    assert ms.method == "multislice" and ms.ri.shape == ry.ri.shape and ms.origin_um == ry.origin_um
    assert abs(e_ms) < 0.003 and abs(e_ms) < abs(e_ry)
    assert abs(el_ms - 1) < 0.1 and abs(el_ms - 1) < abs(el_ry - 1)
    assert len(ms.misfit) == 20 and ms.misfit[-1] < 0.02 * ms.misfit[0] and ms.misfit[-1] < mis_ry


@pytest.mark.slow
def test_polystyrene_bead_within_issue_tolerance():
    """Polystyrene r 1 µm (6 rad, where Rytov's unwrapping fails at oblique illumination): Rytov is
    0.2 low; multislice with ``frame="auto"`` (20 lab-frame iterations, then, as its Δn exceeds
    0.2, 15 in the illumination frame, without momentum) within the issue's 0.005, measured −0.0004
    (+0.0021 with FISTA in the refinement; lab frame alone: +0.005 to +0.009, from SSNP's lag for
    light steep to z; see the forward-model tests)."""
    ill = _ring()
    u = mie_fields(1.0, 1.59, NM, LAM, (N, N), PX, ill, na=NA).astype(np.complex64)
    ry = reconstruct(u, ill, _md(), shape_z=32, non_negativity=True, device="cpu")
    ms = reconstruct(u, ill, _md(), shape_z=32, method="multislice", non_negativity=True, device="cpu",
                     multislice={"iterations": 20, "frame": "auto"})
    e_ry, e_ms = _mean_inside(ry.ri, 1.0) - 1.59, _mean_inside(ms.ri, 1.0) - 1.59
    print(f"\npolystyrene: rytov+nonneg err {e_ry:+.4f}; multislice err {e_ms:+.4f} "
          f"z/x {_axial_over_lateral(ms.ri, 1.59):.2f} misfit {ms.misfit[0]:.3f} -> {ms.misfit[-1]:.4f}")
    assert abs(e_ry) > 0.1
    assert abs(e_ms) < 0.005 and len(ms.misfit) == 35


def test_ssnp_steep_light_deficit_is_the_model_not_its_discretisation():
    """Why the lab frame needs the illumination-frame refinement for polystyrene: at illumination
    NA 1.0 the lab-frame SSNP phase inside the sphere lags exact Mie by ≈ 0.37 rad on average,
    and neither more screens per slice nor the near-normal illumination change that (waves that
    propagate in the sphere but are evanescent in the medium cannot be carried by a march along
    z; marching along the illumination removes it: see the test above)."""
    ill = snap_illuminations(np.array([[0.0, 0.0], [1.0 / LAM, 0.0]]), (N, N), (PX, PX))
    exact = mie_fields(1.0, 1.59, NM, LAM, (N, N), PX, ill, na=NA)
    ph = make_bead((28, N, N), (PX, PX, PX), NM, 0, radius_um=1.0, index=1.59, centre_um=(0, 0, 0))
    c = (np.arange(N) - N // 2) * PX
    disc = np.hypot(c[:, None], c[None, :]) <= 1.0
    lag = []
    for substeps in (1, 3):
        m = MultisliceModel(ph.ri.shape, (PX, PX, PX), LAM, NM, NA, substeps=substeps, device="cpu")
        with torch.no_grad():
            u = m.fields(torch.as_tensor(ph.ri - np.float32(NM)), ill).numpy()
        lag.append(np.angle(u / exact)[:, disc].mean(1))
    print(f"\nmean phase (SSNP − Mie) inside the disc, NA 0 / 1.0: 1 screen {np.round(lag[0], 3)}, "
          f"3 screens {np.round(lag[1], 3)}")
    assert abs(lag[0][0]) < 0.02 and abs(lag[1][0]) < 0.02
    assert lag[0][1] < -0.25 and lag[1][1] < -0.25 and abs(lag[0][1] - lag[1][1]) < 0.1


# ------------------------------------------------------------------ cancel, progress, geometry
def test_cancel_mid_iteration_keeps_the_last_iterate():
    ill = _ring(8, 0.8, 32)
    u = mie_fields(0.8, 1.38, NM, LAM, (32, 32), PX, ill, na=NA).astype(np.complex64)
    token = CancelToken()
    seen = []

    def progress(f, msg=""):
        seen.append(msg)
        if msg.startswith("multislice iteration 2/"):
            token.cancel()

    with pytest.raises(Cancelled) as info:
        reconstruct(u, ill, _md(), shape_z=16, method="multislice", device="cpu", progress=progress,
                    cancel=token, multislice={"iterations": 50, "batch": 4, "chunk": 2})
    partial = info.value.partial
    assert sum(m.startswith("multislice iteration") for m in seen) == 2
    assert "data misfit" in seen[-1]
    assert partial.method == "multislice (cancelled)" and len(partial.misfit) == 2
    assert partial.ri.shape == (16, 32, 32) and np.isfinite(partial.ri).all()
    assert partial.ri.max() > NM + 0.01  # the bead is there


def test_multislice_refuses_sample_rotation_and_is_a_process_option():
    from engine.pipeline.process import ProcessOptions

    assert ProcessOptions(method="multislice").method == "multislice"
    u = np.ones((2, 16, 16), np.complex64)
    with pytest.raises(ValueError, match="sample rotation"):
        reconstruct(u, np.zeros((2, 2)), _md(geometry="sample-rotation", rotation_angles_rad=[0.0, 1.0]),
                    method="multislice", device="cpu")


def _small_bead(n_sphere: float = 1.42):
    ill = _ring(8, 0.8, 32)
    return mie_fields(0.8, n_sphere, NM, LAM, (32, 32), PX, ill, na=NA).astype(np.complex64), ill


def test_divergence_guard_recovers_from_too_long_steps():
    """Four times the safe step: plain FISTA blows up (misfit ×1000), the guard halves the step
    and goes back to the best point, ending below the start."""
    u, ill = _small_bead()
    runs = {}
    for guard in (0.0, 2.0):
        ms = reconstruct(u, ill, _md(), shape_z=16, method="multislice", device="cpu",
                         multislice={"iterations": 12, "batch": 4, "chunk": 4, "step": 4.0, "guard": guard})
        runs[guard] = np.asarray(ms.misfit)
    print(f"\nmisfit without guard {np.round(runs[0.0], 3)}; with {np.round(runs[2.0], 4)}")
    assert runs[0.0].max() > 100 * runs[0.0][0]  # the set-up does diverge
    assert runs[2.0].max() < 5 * runs[2.0][0] and runs[2.0][-1] < 0.5 * runs[2.0][0]


def test_threads_set_for_the_iterations_and_restored():
    """One intra-op thread during the iterations by default (more only synchronise), restored
    afterwards; ``threads=None`` leaves torch's setting alone."""
    u, ill = _small_bead()
    before = torch.get_num_threads()
    other = 2 if before == 1 else before
    seen: list = []
    try:
        torch.set_num_threads(other)
        for threads, expect in (({}, 1), ({"threads": None}, other)):
            seen.clear()
            reconstruct_multislice(u, ill, _md(), shape_z=16, device="cpu",
                                   on_iteration=lambda i, m: seen.append(torch.get_num_threads()),
                                   options={"iterations": 2, "batch": 4, "chunk": 4, **threads})
            assert seen == [expect] * 2
            assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif("OpenMP" not in torch.__config__.parallel_info(), reason="thread count is per thread with OpenMP")
def test_threads_of_a_worker_thread_leave_the_main_thread_alone():
    """Run from a GUI's worker thread, the one-thread setting does not reach the main thread."""
    import threading

    u, ill = _small_bead()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    inside, checked, seen = threading.Event(), threading.Event(), {}

    def on_iteration(i, m):
        seen.setdefault("worker", torch.get_num_threads())
        inside.set()
        checked.wait(30)

    worker = threading.Thread(target=lambda: reconstruct_multislice(
        u, ill, _md(), shape_z=16, device="cpu", on_iteration=on_iteration,
        options={"iterations": 1, "batch": 4, "chunk": 4}))
    try:
        worker.start()
        assert inside.wait(60)
        seen["main"] = torch.get_num_threads()
        checked.set()
        worker.join(60)
        assert seen == {"worker": 1, "main": 2}
    finally:
        checked.set()
        torch.set_num_threads(before)


def test_auto_frame_refines_strong_samples_in_the_illumination_frame(monkeypatch):
    """``frame="auto"``: after the lab-frame iterations, ``refine_iterations`` more in the
    illumination frame only when the iterate's largest Δn exceeds ``frame_threshold``, without
    momentum unless ``refine_momentum``; progress says so, and cancel during the refinement keeps
    its last iterate. The default frame is the lab's: no refinement."""
    import engine.tomography.multislice as ms_module

    u, ill = _small_bead()
    base = {"iterations": 2, "refine_iterations": 2, "batch": 4, "chunk": 4, "frame": "auto"}
    momentum: list = []
    fista = ms_module._fista_step

    def recording_step(opt, *a, **k):
        momentum.append(opt.momentum)
        return fista(opt, *a, **k)

    monkeypatch.setattr(ms_module, "_fista_step", recording_step)
    seen: list = []
    for threshold, expect in ((0.01, 4), (1.0, 2)):
        seen.clear()
        momentum.clear()
        ms = reconstruct(u, ill, _md(), shape_z=16, method="multislice", device="cpu",
                         progress=lambda f, msg="": seen.append((f, msg)),
                         multislice={**base, "frame_threshold": threshold})
        its = [(f, m) for f, m in seen if m.startswith("multislice iteration")]
        assert len(ms.misfit) == expect == len(its), its
        assert sum("(illumination frame)" in m for _, m in its) == expect - 2
        assert all(b[0] >= a[0] for a, b in zip(its, its[1:]))  # the fraction never goes back
        assert np.isfinite(ms.ri).all() and ms.ri.max() > NM + 0.02
        assert momentum == [True, True, False, False][:expect]  # refinement: plain proximal gradient
    ms = reconstruct(u, ill, _md(), shape_z=16, method="multislice", device="cpu",
                     multislice={**base, "frame": "lab", "frame_threshold": 0.01})
    assert len(ms.misfit) == 2
    with pytest.raises(ValueError, match="unknown frame"):
        reconstruct(u, ill, _md(), shape_z=16, method="multislice", device="cpu", multislice={"frame": "z"})
    token = CancelToken()

    def cancel_in_refinement(f, msg=""):
        if "(illumination frame)" in msg:
            token.cancel()

    momentum.clear()
    with pytest.raises(Cancelled) as info:
        reconstruct(u, ill, _md(), shape_z=16, method="multislice", device="cpu", cancel=token,
                    progress=cancel_in_refinement,
                    multislice={**base, "frame_threshold": 0.01, "refine_momentum": True})
    assert len(info.value.partial.misfit) == 3 and np.isfinite(info.value.partial.ri).all()
    assert momentum == [True, True, True]
