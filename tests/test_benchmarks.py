"""The data-feed benchmark runs end to end on a few small clips (its figures are for a person to read; this checks
that the script keeps working and prints every row it promises)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_paper_data_feed_prints_old_and_new_loader_rows(tmp_path):
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "paper_data_feed.py"), "--clips", "4", "--feed-clips", "12",
         "--batch", "2", "--workers", "1", "--source", "160x96", "--no-train", "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert "usable cores" in out and "MB/clip" in out
    assert re.search(r"decode, new clips, pyav +\d+\.\d", out) and re.search(r"geometry only +\d+\.\d", out)
    rows = re.findall(r"^  (old|new)\b.* (\d+\.\d) clips/s \((\d+) clips\)$", out, flags=re.M)
    assert [r[0] for r in rows][:3] == ["old", "new", "new"] and len(rows) in (3, 4), out  # 4: with torchcodec
    assert all(float(rate) > 0 and int(n) >= 12 for _, rate, n in rows)
