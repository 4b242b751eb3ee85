"""Training and training-data code: the scripts that make the shipped models (not in the desktop bundle).

Nothing outside this package imports it (``tests/packaging/test_training_split.py``), and
``packaging/odt-studio.spec`` leaves it out of the bundle. Run each script with ``--help``.

Modules
-------
screening               train the screening CNNs (``python -m engine.training.screening``)
screening_data          cached screening crop sets, data plans, splits by measurement
screening_families      wide-defect-family screening data and the leave-one-family-out protocol
                        (``python -m engine.training.screening_families``)
deep_regularizer        data, training and evaluation of the learned 3-D regulariser
                        (``python -m engine.training.deep_regularizer``)
birefringence_generator train the birefringence generator (``python -m engine.training.birefringence_generator``)

Evaluation metrics shared with the product are in :mod:`engine.metrics`.
"""
