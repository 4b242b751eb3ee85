"""Entry script of the frozen (PyInstaller) ODT Studio: the same as the ``odt-studio`` command.

``multiprocessing.freeze_support()`` must run first: ``odt-studio batch --workers N`` starts
worker processes with the "spawn"/"forkserver" methods, which in a frozen program re-execute
this executable with special arguments that only ``freeze_support`` understands.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.cli import main

    sys.exit(main())
