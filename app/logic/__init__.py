"""The tabs' non-Qt halves: what each tab shows, the jobs that make it, and the text it writes.

Each tab (:mod:`app.tabs`) is a thin Qt widget over small control classes; what it shows and the
background jobs that load it live here, in plain Python on top of the engine, so they can be
tested without Qt (``tests/app_logic/``):

* :mod:`app.logic.importing` — scanning a root folder, importing folders into a project, the
  side-band line of a measurement, the table's cell text and the scan summary;
* :mod:`app.logic.screening` — one measurement's fields and screening as the review shows them,
  saliency, review counts, the threshold's range and the details line of a field;
* :mod:`app.logic.reconstruction` — the volumes the Reconstruction tab shows and its jobs (the
  pipeline call, opening files, objects, export);
* :mod:`app.logic.birefringence` — n_e, n_o, Δn and the director as the viewer shows them,
  read from a result file or a simulator's truth, the readout and the display levels;
* :mod:`app.logic.display` — the views' display computations: where a slice view opens, a field's
  image for a view mode, director lines' on-screen angles, the 3-D director glyphs.

Nothing here imports Qt.
"""
