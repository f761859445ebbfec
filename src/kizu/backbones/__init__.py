"""Pretrained CNN backbones used as frozen feature extractors."""

from kizu.backbones.efficientnet_lite import (
    STAGE_CHANNELS,
    STAGE_STRIDES,
    WEIGHTS_REQUIREMENT,
    WEIGHTS_SHA256,
    EfficientNetLite0,
    FeatureExtractor,
    FusedFeatureExtractor,
    WeightsChecksumError,
    fuse_for_inference,
    grey_to_rgb,
    lite0_feature_extractor,
    lite_normalize,
    load_pretrained_state,
    reestimate_batchnorm,
    weights_path,
)

__all__ = [
    "STAGE_CHANNELS",
    "STAGE_STRIDES",
    "WEIGHTS_REQUIREMENT",
    "WEIGHTS_SHA256",
    "EfficientNetLite0",
    "FeatureExtractor",
    "FusedFeatureExtractor",
    "WeightsChecksumError",
    "fuse_for_inference",
    "grey_to_rgb",
    "lite0_feature_extractor",
    "lite_normalize",
    "load_pretrained_state",
    "reestimate_batchnorm",
    "weights_path",
]
