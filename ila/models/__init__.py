"""Video models: backbone adapters, temporal operators, aggregators and the one model factory.

The operators, aggregators, variants and adapters are named in the torch-free :mod:`ila.catalog`; their classes are
imported when a model is built, not when this package is.
"""

from ila.catalog import (
    describe_variant,
    list_aggregators,
    list_operators,
    list_variants,
    register_aggregator,
    register_operator,
    register_variant,
)
from ila.config import resolve_model_config
from ila.models.factory import create_model
from ila.models.video_clip import VideoCLIP, VideoOutput
from ila.models.video_vit import VideoFeatures, VideoViT

__all__ = [
    "VideoCLIP",
    "VideoFeatures",
    "VideoOutput",
    "VideoViT",
    "create_model",
    "describe_variant",
    "list_aggregators",
    "list_operators",
    "list_variants",
    "register_aggregator",
    "register_operator",
    "register_variant",
    "resolve_model_config",
]
