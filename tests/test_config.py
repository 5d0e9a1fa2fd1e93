import pytest

from ila.config import ConfigError, DataConfig, apply_overrides, build, flatten, to_dict


def test_defaults_round_trip():
    cfg = build(DataConfig, {})
    assert build(DataConfig, to_dict(cfg)) == cfg
    assert flatten(to_dict(cfg))["augment.grayscale_p"] == 0.2


@pytest.mark.parametrize(
    "data,match",
    [
        ({"num_frame": 8}, r"data.num_frame: unknown key"),
        ({"num_frames": "eight"}, r"data.num_frames: expected int"),
        ({"sampling": "dense"}, r"data.sampling: expected one of 'segment', 'uniform'"),
        ({"augment": {"grayscale_p": 2}}, r"data.augment.grayscale_p: expected a number in \[0.0, 1.0\]"),
        ({"augment": {"jitter": 1}}, r"data.augment.jitter: unknown key"),
        ({"test_crops": 2}, r"data.test_crops: expected one of 1, 3"),
        ({"resize_short": 10, "input_size": 32}, r"data.resize_short: expected >= input_size"),
    ],
)
def test_bad_values_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        build(DataConfig, data, "data")


def test_overrides_parse_yaml_values():
    d = apply_overrides({}, ["data.num_frames=16", "data.augment.multiscale_scales=[1, 0.5]", "data.reader=pyav"])
    cfg = build(DataConfig, d["data"], "data")
    assert cfg.num_frames == 16 and cfg.augment.multiscale_scales == (1.0, 0.5) and cfg.reader == "pyav"
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["data.num_frames"])


def test_short_side_follows_the_clip_recipe():
    assert DataConfig(input_size=224).short_side == 256
    assert DataConfig(input_size=32).short_side == 37


def test_yaml_on_off_mean_what_the_user_wrote(tmp_path):
    """YAML 1.1 reads on/off as booleans; for keys whose values are 'on'/'off' they mean those words."""
    from ila.config import load_run_config

    path = tmp_path / "run.yaml"
    path.write_text("data:\n  hflip: off\n")
    assert load_run_config(path).data.hflip == "off"
    assert load_run_config(path, ["data.hflip=on"]).data.hflip == "on"
    assert load_run_config(path, ["data.hflip=remap"]).data.hflip == "remap"
    with pytest.raises(ConfigError, match=r"data.sampling: expected one of 'segment', 'uniform', got True"):
        load_run_config(path, ["data.sampling=yes"])  # no boolean spelling among its values
    with pytest.raises(ConfigError, match=r"data.test_crops: expected one of 1, 3, got True"):
        load_run_config(path, ["data.test_crops=true"])  # True == 1 in Python, but it is not a crop count


def test_the_model_takes_the_clips_frame_count():
    from ila.config import load_run_config

    assert load_run_config(None, ["data.num_frames=16"]).model.num_frames == 16
    assert load_run_config(None, ["data.num_frames=4", "model.num_frames=4"]).model.num_frames == 4
    with pytest.raises(ConfigError, match=r"model.num_frames: 16 differs from data.num_frames \(8\)"):
        load_run_config(None, ["model.num_frames=16"])



def test_configs_saved_with_the_mit_boolean_still_read():
    from ila.config import load_run_config

    for mit, aggregator in ((True, "mit"), (False, "mean")):
        with pytest.warns(FutureWarning, match="model.mit is replaced by model.aggregator"):
            assert load_run_config(None, [f"model.mit={str(mit).lower()}"]).model.aggregator == aggregator
    with pytest.raises(ConfigError, match="model.mit: True contradicts model.aggregator: mean"):
        load_run_config(None, ["model.mit=true", "model.aggregator=mean"])


def test_reading_a_run_config_imports_neither_torch_nor_open_clip():
    """The Snakefile reads and checks every row's config before any job: that must stay cheap (a fresh
    interpreter, so that the test session's own imports do not count)."""
    import subprocess
    import sys

    code = ("import sys; from ila.config import load_run_config; from ila.ablations import load_table, row_run_config;"
            " load_run_config(None, ['model.variant=ila']); t = load_table('table4');"
            " [row_run_config({}, t, r) for r in t.available_rows()];"
            " heavy = [m for m in ('torch', 'open_clip', 'timm') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
