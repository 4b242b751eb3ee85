"""Test-wide setup: Qt and VTK run headless.

``QT_QPA_PLATFORM=offscreen`` lets Qt widgets run without a display (unless a real X
display was asked for, e.g. under xvfb-run, where offscreen together with DISPLAY crashes).
``VTK_DEFAULT_OPENGL_WINDOW=vtkOSOpenGLRenderWindow`` makes VTK render through OSMesa:
without it VTK inside offscreen Qt silently renders garbage (``shared/ENVIRONMENT.md``).
These must be set before Qt or VTK is imported, hence at the top of this file.
"""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkOSOpenGLRenderWindow")
