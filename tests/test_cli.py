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
