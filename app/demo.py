"""Whether this build can make the demo project (the first launch and ``odt-studio --demo``).

The demo project itself is built by the engine, :mod:`engine.pipeline.demo_project`; the window
runs it as a background job (``MainWindow.start_demo``). A bundle built without the simulator
has no demo, and the window says so instead of failing.
"""

from __future__ import annotations

import importlib.util

__all__ = ["demo_available"]


def demo_available() -> bool:
    """True when this build has the simulator that the demo project is made with."""
    try:
        return importlib.util.find_spec("engine.simulate.demo") is not None
    except (ImportError, ValueError):
        return False
