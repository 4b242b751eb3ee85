"""Field retrieval: analytic holograms |U + R|² with known fields, carriers and illuminations."""

from __future__ import annotations

import numpy as np
import pytest

from engine.holography import find_carrier, propagate, retrieve_fields, unwrap_phase
from engine.metadata import MeasurementMetadata
from engine.progress import Cancelled, CancelToken

H = W = 128
PX = 0.05
LAM, NM, NA = 0.532, 1.337, 1.2
BIN = 1.0 / (W * PX)  # one DFT bin in cycles/µm


def _grid():
    y = (np.arange(H) - H // 2)[:, None] * PX
    x = (np.arange(W) - W // 2)[None, :] * PX
    return y, x


def _object():
    """A band-limited (|ν| < 0.5 /µm), periodic sample field with amplitude and 1.5 rad phase."""
    y, x = _grid()
    phi = 1.5 * np.exp(-((x - 0.5) ** 2 + y**2) / 1.2**2)
    obj = (1 - 0.2 * np.exp(-(x**2 + (y - 0.3) ** 2) / 1.0**2)) * np.exp(1j * phi)
    fy = np.fft.fftfreq(H, PX)[:, None]
    fx = np.fft.fftfreq(W, PX)[None, :]
    return np.fft.ifft2(np.fft.fft2(obj) * ((fx**2 + fy**2) < 0.5**2))


def _holograms(carrier, ill):
    y, x = _grid()
    obj = _object()
    ref = np.exp(-2j * np.pi * (carrier[0] * x + carrier[1] * y))
    holo, bg = [], []
    for f in ill:
        pw = np.exp(2j * np.pi * (f[0] * x + f[1] * y))
        holo.append(np.abs(obj * pw + ref) ** 2)
        bg.append(np.abs(pw + ref) ** 2)
    return np.asarray(holo, np.float32), np.asarray(bg, np.float32), obj


def _ring(n=8, radius=0.9 / LAM, on_grid=False):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ill = np.stack([np.cos(a), np.sin(a)], 1) * radius
    return np.round(ill / BIN) * BIN if on_grid else ill


def _md(**kw):
    return MeasurementMetadata.from_dict(dict(format="odt-measurement/1", wavelength_um=LAM, medium_index=NM,
                                              na_objective=NA, pixel_size_um=PX, **kw))


def test_recovers_analytic_field_exactly_on_grid():
    carrier = np.round(np.array([5.2, 4.93]) / BIN) * BIN
    ill = _ring(on_grid=True)
    holo, bg, obj = _holograms(carrier, ill)
    r = retrieve_fields(holo, bg, _md(carrier_per_um=list(carrier), illumination_per_um=ill.tolist()),
                        device="cpu")
    # camera data as uint16 (scaled) gives the same field to quantisation accuracy
    r16 = retrieve_fields((holo * 8000).astype(np.uint16), (bg * 8000).astype(np.uint16),
                          _md(carrier_per_um=list(carrier), illumination_per_um=ill.tolist()), unwrap=False,
                          device="cpu")
    assert np.median(np.abs(r16.field - obj)) < 1e-3
    assert r.field.shape == (8, H, W) and r.field.dtype == np.complex64
    assert np.abs(r.field - obj).max() < 1e-4
    # positive phase for a phase-delaying sample, unwrapped phase equals the true phase
    assert np.abs(r.unwrapped_phase - np.angle(obj)).max() < 1e-4
    np.testing.assert_allclose(r.illumination_per_um, ill)
    assert not r.illumination_estimated and not r.carrier_estimated


@pytest.mark.parametrize("known", ["carrier+illumination", "carrier", "illumination", "nothing"])
def test_subpixel_carrier_and_illumination(known):
    carrier = np.array([5.2 + 0.0137, 4.93])  # off the DFT grid
    ill = _ring()  # off the DFT grid as well; symmetric about the axis
    holo, bg, obj = _holograms(carrier, ill)
    kw = {}
    if "carrier" in known:
        kw["carrier_per_um"] = list(carrier)
    if "illumination" in known:
        kw["illumination_per_um"] = ill.tolist()
    r = retrieve_fields(holo, bg, _md(**kw), unwrap=False, device="cpu")
    carrier_err_bins = np.abs(r.carrier_per_um - carrier).max() / BIN
    ill_err_bins = np.abs(r.illumination_per_um - ill).max() / BIN
    assert carrier_err_bins < 0.05, carrier_err_bins
    assert ill_err_bins < 0.05, ill_err_bins
    assert r.carrier_estimated == ("carrier" not in known)
    assert r.illumination_estimated == ("illumination" not in known)
    # the window truncation of off-grid plane waves limits the field accuracy, not the algorithm
    err = np.abs(r.field - obj)[:, 16:-16, 16:-16]
    assert np.median(err) < 0.01 and err.max() < 0.2


def test_find_carrier_takes_the_positive_twin():
    y, x = _grid()
    for c in ([6.1, -2.3], [0.0, 6.4], [6.0, 0.0]):
        holo = np.abs(1 + np.exp(2j * np.pi * (c[0] * x + c[1] * y))) ** 2  # side band at ±c
        got = find_carrier(holo, PX, device="cpu")
        want = np.array(c) if (c[0] > 0 or (c[0] == 0 and c[1] > 0)) else -np.array(c)
        assert np.abs(got - want).max() < 0.02 * BIN


def test_single_background_for_all_illuminations():
    carrier = np.round(np.array([5.2, 4.93]) / BIN) * BIN
    ill = _ring(on_grid=True)
    holo, bg, obj = _holograms(carrier, ill)
    single_bg = _holograms(carrier, [[0.0, 0.0]])[1][0]  # one normal-incidence background for all
    r = retrieve_fields(holo, single_bg, _md(carrier_per_um=list(carrier)), unwrap=False, device="cpu")
    # the tilt is estimated from the sample fields themselves (biased slightly by the sample)
    assert np.abs(r.illumination_per_um - ill).max() < 0.05 * BIN
    assert np.median(np.abs(r.field - obj)) < 0.03


def test_refocusing_undoes_defocus():
    carrier = np.round(np.array([5.2, 4.93]) / BIN) * BIN
    ill = _ring(n=4, on_grid=True)
    y, x = _grid()
    obj = _object()
    ref = np.exp(-2j * np.pi * (carrier[0] * x + carrier[1] * y))
    holo, bg = [], []
    for f in ill:
        pw = np.exp(2j * np.pi * (f[0] * x + f[1] * y))
        defocused = propagate(obj * pw, 1.5, PX, LAM, NM, device="cpu")
        pw_d = propagate(pw, 1.5, PX, LAM, NM, device="cpu")
        holo.append(np.abs(defocused + ref) ** 2)
        bg.append(np.abs(pw_d + ref) ** 2)
    holo, bg = np.asarray(holo, np.float32), np.asarray(bg, np.float32)
    md = _md(carrier_per_um=list(carrier), illumination_per_um=ill.tolist())
    blurred = retrieve_fields(holo, bg, md, unwrap=False, device="cpu").field
    focused = retrieve_fields(holo, bg, md, refocus_um=-1.5, unwrap=False, device="cpu").field
    assert np.abs(focused - obj).max() < 1e-3
    assert np.abs(blurred - obj).max() > 0.05


@pytest.mark.parametrize("method", ["herraez", "fourier"])
def test_unwrap_recovers_large_phase(method):
    y, x = np.mgrid[-48:48, -48:48].astype(float)
    phase = 18.0 * np.exp(-(x**2 + y**2) / 20.0**2)
    amp = 1 - 0.3 * np.exp(-(x**2 + y**2) / 15.0**2)
    field = np.stack([amp * np.exp(1j * phase), amp * np.exp(-1j * phase)]).astype(np.complex64)
    out = unwrap_phase(field, method, device="cpu")
    assert out.shape == field.shape and out.dtype == np.float32
    assert np.abs(out[0] - phase).max() < 1e-3
    assert np.abs(out[1] + phase).max() < 1e-3
    # a wrapped phase (real input) works too
    out2 = unwrap_phase(np.angle(field[0]), method, device="cpu")
    assert np.abs(out2 - phase).max() < 1e-3


def test_progress_and_cancel():
    carrier = np.round(np.array([5.2, 4.93]) / BIN) * BIN
    ill = _ring(n=4, on_grid=True)
    holo, bg, _ = _holograms(carrier, ill)
    seen = []
    retrieve_fields(holo, bg, _md(carrier_per_um=list(carrier)), chunk=2, device="cpu",
                    progress=lambda f, m="": seen.append(f))
    assert seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen) and len(seen) > 3
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        retrieve_fields(holo, bg, _md(carrier_per_um=list(carrier)), device="cpu", cancel=tok)
