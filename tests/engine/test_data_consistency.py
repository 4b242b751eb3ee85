"""The real-FFT data-consistency projection equals the complex one it replaces."""

import pytest
import torch

from engine.tomography.constraints import DataConsistency
from engine.tomography.fourier_mapping import FourierData


@pytest.mark.parametrize("shape", [(8, 9, 10), (7, 6, 5), (16, 12, 20)])
def test_projection_matches_complex_fft_form(shape):
    g = torch.Generator().manual_seed(1)
    support = torch.rand(shape, generator=g) < 0.3
    spectrum = torch.randn(shape, dtype=torch.complex64, generator=g)  # deliberately not Hermitian
    spectrum = torch.where(support, spectrum, torch.zeros((), dtype=spectrum.dtype))
    data = FourierData(spectrum, support, (0.1, 0.1, 0.1), 1.337, 0.532)
    project = DataConsistency(data)
    x = torch.randn(shape, generator=g)
    reference = torch.fft.ifftn(torch.where(support, spectrum, torch.fft.fftn(x))).real
    assert torch.allclose(project(x), reference, atol=2e-6)
    assert torch.allclose(project.initial(), torch.fft.ifftn(spectrum).real, atol=2e-6)
