"""ODT Studio engine: the science of optical diffraction tomography as a plain library.

The engine never imports Qt (tested in ``tests/engine/test_boundary.py``). Every long call
accepts a ``progress`` callback and a ``cancel`` token (see :mod:`engine.progress`).

Conventions used everywhere (``docs/formats.md``):

* lengths in micrometres (µm), spatial frequencies in cycles/µm;
* arrays in NumPy order: volumes (z, y, x), images (y, x);
* pixel ``j`` of an axis with ``n`` pixels sits at ``(j - n//2) * pixel`` (FFT centre);
* fields follow ``exp(+i(k·r - ωt))``: a sample with n > n_m delays the wave and its
  retrieved phase is positive; propagation along +z multiplies the angular spectrum by
  ``exp(+2πi·ν_z·z)``;
* spectra use ``numpy.fft.fft2`` with frequency axes ``fftfreq(n, d=pixel_size_um)``.
"""

__version__ = "0.1.0"
