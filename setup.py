"""Package layout of ODT Studio (everything else is declared in pyproject.toml).

The shipped models, icon and desktop entry live in ``resources/`` at the top of the source
tree (the PyInstaller spec, the .deb builder, the training scripts and the docs all refer to
that folder). In a wheel they become the package data ``engine/_resources/``: the mapping
below installs ``resources/`` as the data-only package ``engine._resources``, and
``engine.resources.resources_dir()`` looks there first. pyproject.toml
(``[tool.setuptools.package-data]``) says which of its files go in: the models and their
cards, the icons and the desktop entry; not the screenshots, the training logs or the helper
scripts.

This needs setup.py because pyproject.toml's package discovery (``packages.find``) cannot be
combined with a package mapped to another folder.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["app", "app.*", "engine", "engine.*"])
    + ["engine._resources", "engine._resources.models", "engine._resources.icons"],
    package_dir={"engine._resources": "resources"},
)
