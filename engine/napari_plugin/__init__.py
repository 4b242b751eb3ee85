"""napari plugin (npe2 manifest ``napari.yaml`` beside this file): opens ``*.odt.h5`` result files.

The reader (:mod:`engine.napari_plugin.reader`) never imports napari: it returns plain
napari "layer data" tuples, so it is tested without napari.
"""

from .reader import napari_get_reader, read_odt_result

__all__ = ["napari_get_reader", "read_odt_result"]
