"""kizu's training defaults, in one place. A leaf module (no imports), so the command line can show
them without loading the core; ``kizu.TrainConfig`` takes its field defaults from here."""

#: detector ``kizu train`` uses without ``--detector`` (chosen by bench/detectors.py; docs/detectors.md)
DETECTOR = "patch-knn"
#: target false-alarm rate on good images
ALPHA = 0.05
THRESHOLD_RULE = "conformal"
#: conditional rule: allowed probability that the false-alarm rate exceeds alpha
DELTA = 0.1
CALIBRATION = "auto"
CALIBRATION_FRACTION = 0.2
FOLDS = 5
SEED = 0
#: images longer than this on their longer side are inspected at this size (aspect kept), unless
#: the model tiles them or was given a size: the default detector's network sees 224 px anyway, and
#: full-resolution copies and maps of a few hundred 1024 px colour images took 16 GB of memory
MAX_SIDE = 512
#: Gaussian smoothing of detector maps (px) before the image score and for display
SIGMA = 1.0
#: share of the smoothed map's highest pixels averaged by the ``topk`` score
TOPK = 0.01
