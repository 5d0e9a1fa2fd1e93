from ila.cli import main
from ila.data.annotations import read_labels, read_video_list


def test_synth_command_writes_a_loadable_dataset(tmp_path, capsys):
    out = tmp_path / "d"
    rc = main(["synth", "--preset", "tiny", "--out", str(out), "--train-per-class", "2", "--val-per-class", "1",
               "--temporal-pairs", "1", "--static-classes", "1", "--workers", "1"])
    assert rc == 0
    classes = read_labels(out / "labels.csv")
    assert [c.group for c in classes] == ["temporal", "temporal", "static"]
    assert len(read_video_list(out / "train.txt", len(classes))) == 6
    assert "wrote" in capsys.readouterr().out


def test_synth_command_rejects_bad_sizes(tmp_path, capsys):
    assert main(["synth", "--preset", "tiny", "--out", str(tmp_path / "x"), "--size", "33"]) == 2
    assert "even number" in capsys.readouterr().err


def test_annotation_errors_are_one_tidy_line(tiny_copy, tmp_path, capsys):
    """A broken labels file reaches the user as one line naming file:line, exit code 2, no traceback."""
    from ila.cli import main

    labels = tiny_copy / "labels.csv"
    labels.write_text(labels.read_text().replace("\n1,", "\n7,", 1))
    args = ["train", f"data.root={tiny_copy}", "model.backbone=ILA-mini-32", "data.input_size=32",
            "tracking.enabled=false", f"output_dir={tmp_path / 'run'}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ila train: annotation error: ") and f"{labels}:3: expected class id 1" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    lines = (tiny_copy / "val.txt").read_text().splitlines()
    labels.write_text(labels.read_text().replace("\n7,", "\n1,", 1))
    (tiny_copy / "train.txt").write_text(lines[0].rsplit(maxsplit=1)[0] + " 42\n")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert f"annotation error: {tiny_copy / 'train.txt'}:1: unknown label 42" in err and len(err.splitlines()) == 1
