"""Video models: backbone adapters, the temporal-operator and aggregator registries and the one model factory."""

# Importing the operator modules registers them.
from ila.config import resolve_model_config
from ila.models.aggregators import list_aggregators, register_aggregator
from ila.models.factory import create_model
from ila.models.operators import comparisons as _comparisons  # noqa: F401
from ila.models.operators import ila as _ila  # noqa: F401
from ila.models.operators import released as _released  # noqa: F401
from ila.models.operators.base import list_operators, register_operator
from ila.models.video_clip import VideoCLIP, VideoOutput
from ila.models.video_vit import VideoFeatures, VideoViT
from ila.variants import describe_variant, list_variants, register_variant

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
