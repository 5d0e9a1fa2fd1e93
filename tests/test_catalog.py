"""The catalog of extension points (``ila.catalog``): every entry imports and names a class of its kind (as timm's
tests iterate ``list_models()``), and an operator added through the catalog alone (a class in a module of its own
plus one entry) is checked by the config, built and trained like the suite's own."""

import dataclasses
import sys
import textwrap
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from ila import catalog
from ila.config import ConfigError, load_run_config, resolve_model_config

KINDS = {"operator": catalog.OPERATORS, "aggregator": catalog.AGGREGATORS, "adapter": catalog.ADAPTERS}
ENTRIES = [(kind, name) for kind, entries in KINDS.items() for name in entries]


def _interface(kind: str) -> type:
    from ila.models.adapters import BackboneAdapter
    from ila.models.aggregators import VideoAggregator
    from ila.models.operators.base import TemporalOperator

    return {"operator": TemporalOperator, "aggregator": VideoAggregator, "adapter": BackboneAdapter}[kind]


@pytest.mark.parametrize("kind,name", ENTRIES, ids=[f"{k}-{n}" for k, n in ENTRIES])
def test_every_entry_imports_a_class_of_its_kind(kind, name):
    entry = KINDS[kind][name]
    cls = catalog.load_class(entry.location, _interface(kind))
    assert entry.location.endswith(f":{cls.__name__}")
    if kind == "operator":
        assert dataclasses.is_dataclass(entry.options), name


def test_every_variant_names_catalogued_parts():
    for name in catalog.list_variants():
        defaults = catalog.variant_defaults(name)
        assert defaults.get("operator") is None or defaults["operator"] in catalog.OPERATORS, name
        assert defaults.get("aggregator", "mean") in catalog.AGGREGATORS, name
    assert catalog.DEFAULT_VARIANT in catalog.VARIANTS


def test_a_location_that_is_not_a_class_of_the_kind_is_refused():
    from ila.models.operators.base import TemporalOperator

    with pytest.raises(TypeError, match="is not a TemporalOperator subclass"):
        catalog.load_class("ila.models.aggregators:FrameMean", TemporalOperator)
    with pytest.raises(ValueError, match="expected 'package.module:Class'"):
        catalog.load_class("ila.models.aggregators.FrameMean", TemporalOperator)


def test_the_config_takes_any_catalogued_aggregator(monkeypatch):
    with pytest.raises(ConfigError, match=r"model.aggregator: unknown video aggregator 'frame_mean_too'; expected one "
                                          r"of \['evl', 'mean', 'mit'\]"):
        resolve_model_config({"aggregator": "frame_mean_too"})
    monkeypatch.setattr(catalog, "AGGREGATORS", dict(catalog.AGGREGATORS))
    catalog.register_aggregator("frame_mean_too", "ila.models.aggregators:FrameMean", "the frame mean again")
    assert resolve_model_config({"aggregator": "frame_mean_too"}).aggregator == "frame_mean_too"
    with pytest.raises(ValueError, match="catalogued already"):
        catalog.register_aggregator("frame_mean_too", "ila.models.aggregators:FrameMean", "and again")


@dataclass
class FrameDifferenceOptions:
    """The user's operator's options, declared without torch as the suite's are."""

    scale: float = 0.1


# A user's operator in a module of its own: each patch token gets a learned multiple of its change since the
# previous frame.
USER_OPERATOR = '''
import torch
from torch import nn

from ila.models.operators.base import OperatorOutput, TemporalOperator


class FrameDifference(TemporalOperator):
    def __init__(self, ctx, options):
        super().__init__()
        self.scale = nn.Parameter(torch.full((ctx.width,), options.scale))

    def forward(self, x, num_frames):
        frames = x.unflatten(0, (-1, num_frames))
        previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        return OperatorOutput(x + ((frames - previous) * self.scale).flatten(0, 1))
'''


@pytest.fixture
def user_operator_module(tmp_path, monkeypatch):
    (tmp_path / "user_frame_difference.py").write_text(textwrap.dedent(USER_OPERATOR))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_frame_difference"
    sys.modules.pop("user_frame_difference", None)


def test_an_operator_added_through_the_catalog_alone_trains(user_operator_module, monkeypatch):
    from ila.models import create_model

    monkeypatch.setattr(catalog, "OPERATORS", dict(catalog.OPERATORS))
    catalog.register_operator("frame_difference", f"{user_operator_module}:FrameDifference", FrameDifferenceOptions)
    overrides = ["model.variant=baseline", "model.operator=frame_difference", "model.operator_args.scale=0.5",
                 "model.backbone=ILA-mini-32", "data.num_frames=4"]
    with pytest.raises(ConfigError, match="model.operator_args.scael: unknown key"):
        load_run_config(None, [*overrides, "model.operator_args.scael=1"])
    cfg = load_run_config(None, overrides)
    assert user_operator_module not in sys.modules  # the config is checked without the class

    torch.manual_seed(0)
    model = create_model(cfg.model, ["left", "right", "still"]).train()
    operators = list(model.video_vit.operators.values())
    assert {op.registry_name for op in operators} == {"frame_difference"} and len(operators) == 4
    assert all(torch.all(op.scale == 0.5) for op in operators)
    # The model's parameter groups, as the trainer's optimiser takes them (the operator's are the new ones).
    assert all(any(p is op.scale for p in model.param_groups()["new"]) for op in operators)
    optimizer = torch.optim.AdamW([{"params": params} for params in model.param_groups().values() if params], lr=1e-3)
    out = model(torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    F.cross_entropy(out.logits, torch.tensor([0, 2])).backward()
    optimizer.step()
    assert all(not torch.all(op.scale == 0.5) for op in operators)
