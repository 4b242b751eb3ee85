"""Field screening: sort retrieved optical fields into clean and noisy before reconstruction.

Follows D. Ryu et al., "Deep learning-based optical field screening for robust optical
diffraction tomography", Sci. Rep. 9, 15239 (2019), doi:10.1038/s41598-019-51363-x:
a CNN on the centre-cropped phase,
next to the rule-based Fourier-peak baseline, with saliency maps for the GUI.

Modules
-------
rule        the rule-based high-frequency peak metric (baseline)
network     the published CNN, the compact distilled CNN, model loading and ``screen_fields``
saliency    CAM, guided back-propagation and Grad-CAM maps
crops       labelled crops from simulated measurements (the replay set) and their augmentation
retrain     fine-tuning on a project's manual overrides, with replay

The metrics (accuracy, sensitivity, specificity, ROC AUC, confusion counts) are in
:mod:`engine.metrics` and re-exported here; the training script and its data sets are in
:mod:`engine.training` (``python -m engine.training.screening --help``).

Label convention: in training and metrics, ``1 = noisy`` (the positive class, as the
network's output is the probability that a field is noisy); in ``ScreeningResult.decision``
and in result files, ``1 = clean`` (used) as ``docs/formats.md`` says.
"""

from ..metrics import accuracy, confusion_counts, roc_auc, screening_metrics, sensitivity, specificity
from .network import (CompactScreeningNet, MinOfNetworks, ModelFileError, ScreeningModel, ScreeningNet, ScreeningResult,
                      load_model, preprocess, save_model, screen_fields)
from .rule import DEFAULT_MASK_RADIUS_PER_UM, DEFAULT_RULE_THRESHOLD, rule_decide, rule_peak_metric

__all__ = [
    "ScreeningNet",
    "CompactScreeningNet",
    "MinOfNetworks",
    "ScreeningModel",
    "ScreeningResult",
    "ModelFileError",
    "preprocess",
    "load_model",
    "save_model",
    "screen_fields",
    "rule_peak_metric",
    "rule_decide",
    "DEFAULT_MASK_RADIUS_PER_UM",
    "DEFAULT_RULE_THRESHOLD",
    "accuracy",
    "sensitivity",
    "specificity",
    "roc_auc",
    "confusion_counts",
    "screening_metrics",
]
