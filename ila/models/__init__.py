"""Video models: open_clip backbones, the temporal-operator registry and the one model factory."""

# Importing the operator modules registers them.
from ila.models.factory import create_model, describe_variant, list_variants, register_variant, resolve_model_config
from ila.models.operators import comparisons as _comparisons  # noqa: F401
from ila.models.operators import ila as _ila  # noqa: F401
from ila.models.operators import released as _released  # noqa: F401
from ila.models.operators.base import list_operators, register_operator
from ila.models.video_clip import VideoCLIP, VideoOutput

__all__ = [
    "VideoCLIP",
    "VideoOutput",
    "create_model",
    "describe_variant",
    "list_operators",
    "list_variants",
    "register_operator",
    "register_variant",
    "resolve_model_config",
]
