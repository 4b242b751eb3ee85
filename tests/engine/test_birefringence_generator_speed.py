"""The learned route's faster inference path (#20 item 5) computes what the plain one did."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from engine.birefringence.generator import _conv3d, generator_inputs
from engine.birefringence.jones import JonesFields
from engine.metadata import MeasurementMetadata


@pytest.mark.parametrize("shape, kernel, stride", [
    ((1, 64, 8, 32, 32), 3, 1),   # the ConvGRU at D/4: routed through the swapped axes
    ((1, 16, 16, 64, 64), 3, 1),  # the first up-block's second convolution
    ((1, 8, 12, 20, 28), 3, 2),   # strided
    ((2, 8, 8, 16, 16), 3, 1),    # a batch: untouched
    ((1, 8, 16, 16, 8), 3, 1),    # W <= D: untouched
])
def test_conv3d_is_the_same_convolution(shape, kernel, stride):
    torch.manual_seed(0)
    conv = nn.Conv3d(shape[1], 12, kernel, stride=stride, padding=kernel // 2, bias=True)
    x = torch.randn(*shape)
    with torch.no_grad():
        want, got = conv(x), _conv3d(conv, x)
    assert got.shape == want.shape and got.is_contiguous()
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def _reference_inputs(jones: JonesFields, md: MeasurementMetadata, dd: int, window: int) -> torch.Tensor:
    """The lifted, window-averaged Jones–Rytov sequence by the direct float64 formula (no padding:
    H, W, D multiples of 4), as ``generator_inputs`` computed it before it was made faster."""
    from engine.birefringence.tensor_tomography import jones_rytov

    psi = jones_rytov(jones.field, device="cpu").to(torch.complex128)
    n, hh, ww = psi.shape[0], psi.shape[-2], psi.shape[-1]
    vox, km = jones.pixel_size_um, md.medium_index / md.wavelength_um
    spec = torch.fft.fft2(psi.reshape(n, 4, hh, ww))
    qy = torch.fft.fftfreq(hh, d=vox, dtype=torch.float64)
    qx = torch.fft.fftfreq(ww, d=vox, dtype=torch.float64)
    z = (torch.arange(dd, dtype=torch.float64) - dd // 2) * vox
    steps = []
    for s in range(0, n, window):
        f = torch.as_tensor(jones.illumination_per_um[s:s + window])
        rho2 = (qx[None, None, :] + f[:, 0, None, None]) ** 2 + (qy[None, :, None] + f[:, 1, None, None]) ** 2
        pupil = rho2 <= min((md.na_objective / md.wavelength_um) ** 2, km ** 2 * (1 - 1e-6))
        nuz = torch.sqrt(torch.clamp(km ** 2 - rho2, min=0.0))
        fz = torch.sqrt(km ** 2 - (f ** 2).sum(1))
        kern = pupil[:, None] * torch.exp(2j * math.pi * (nuz - fz[:, None, None])[:, None] * z[None, :, None, None])
        vol = torch.fft.ifft2((spec[s:s + window, :, None] * kern[:, None]).mean(0))
        steps.append(torch.view_as_real(vol).permute(0, 4, 1, 2, 3).reshape(8, dd, hh, ww))
    return torch.stack(steps).float()


def test_generator_inputs_match_the_direct_formula():
    rng = np.random.default_rng(4)
    n, size = 7, 32
    y, x = np.mgrid[:size, :size] - size // 2
    blob = np.exp(-(x ** 2 + y ** 2) / 40.0)
    field = np.zeros((n, 2, 2, size, size), np.complex64)
    for i in range(n):  # a weak, smooth anisotropic object: J = exp(i Φ), Φ small
        a, b = rng.uniform(0.2, 0.8, 2)
        field[i, 0, 0] = np.exp(1j * a * blob)
        field[i, 1, 1] = np.exp(1j * b * blob)
        field[i, 0, 1] = field[i, 1, 0] = 0.05j * blob
    ill = rng.uniform(-1.0, 1.0, (n, 2))
    jones = JonesFields(field=field, illumination_per_um=ill, pixel_size_um=0.2)
    md = MeasurementMetadata(wavelength_um=0.532, medium_index=1.46, na_objective=1.2, pixel_size_um=0.2)
    got = generator_inputs(jones, md, shape_zyx=(16, size, size), window=3, voxel_um=0.2, device="cpu")
    want = _reference_inputs(jones, md, 16, 3)
    assert got.shape == want.shape == (3, 8, 16, size, size)
    assert float((got - want).abs().max()) < 1e-4 * float(want.abs().max())


@pytest.mark.parametrize("shape, pixel, new_pixel", [
    ((2, 2, 2, 32, 32), 0.1, 0.2),   # the learned route's case: crop
    ((1, 2, 2, 33, 31), 0.1, 0.2),   # odd sizes
    ((1, 2, 2, 31, 34), 0.2, 0.1),   # zero-padding
    ((1, 2, 2, 64, 48), 0.1, 0.13),
])
def test_resample_jones_gathers_the_shifted_spectrum_exactly(shape, pixel, new_pixel):
    """The crop without a full fftshift is the fftshift-crop-ifftshift formula, bit for bit."""
    from engine.birefringence.generator import resample_jones

    torch.manual_seed(1)
    j = torch.randn(*shape, dtype=torch.complex64)
    hh, ww = shape[-2:]
    h2, w2 = (max(2, int(round(n * pixel / new_pixel))) for n in (hh, ww))
    spec = torch.fft.fftshift(torch.fft.fft2(j), dim=(-2, -1))
    out = torch.zeros(*shape[:-2], h2, w2, dtype=torch.complex64)
    ch, cw = min(hh, h2), min(ww, w2)
    sy, sx, ty, tx = hh // 2 - ch // 2, ww // 2 - cw // 2, h2 // 2 - ch // 2, w2 // 2 - cw // 2
    out[..., ty:ty + ch, tx:tx + cw] = spec[..., sy:sy + ch, sx:sx + cw]
    want = torch.fft.ifft2(torch.fft.ifftshift(out, dim=(-2, -1))) * (h2 * w2 / (hh * ww))
    assert torch.equal(resample_jones(j, pixel, new_pixel, device="cpu"), want)
