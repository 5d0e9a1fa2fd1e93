"""GFLOPs per view and parameters of a table's rows at the paper's configuration, beside the paper's figures.

    python analysis/model_costs.py [ablations/table4.yaml] [--backbone ViT-B-32] [--frames 8]

Each row is counted at its own configuration in the paper (the table's ``paper_config`` and the row's: backbone,
frames, head); ``--backbone`` / ``--frames`` count every row at another. Rows run only on the embedded default have
no configuration in the paper and are left out.

Convention: fvcore's (1 multiply-add = 1 FLOP), one view = one video [1, T, 3, H, W] + one text [1, 77], attention
included; counted on the meta device (no weights needed). Rows whose method is not implemented yet are listed as such.
A gap over 10% to the paper's figure is explained from the counted breakdown (temporal operator, text side).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ila.ablations import load_table
from ila.models.flops import model_cost
from ila.reporting import FLOPS_CONVENTION, flops_gap_note


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", nargs="?", default=str(Path(__file__).parents[1] / "ablations" / "table4.yaml"))
    p.add_argument("--backbone")
    p.add_argument("--frames", type=int)
    args = p.parse_args()
    table = load_table(args.table)
    print(f"{table.title}\n{FLOPS_CONVENTION}\n")
    header = (f"{'row':34} {'config':24} {'ours GFLOPs':>11} {'paper GFLOPs':>12} {'gap':>7} {'operator G':>10} "
              f"{'text G':>7} {'params M':>9} {'added by operator M':>20}")
    print(header)
    print("-" * len(header))
    notes = []
    for row in table.rows:
        if row.cited or row.datasets == ["synth"]:
            continue
        paper = row.paper.get("gflops")
        if not row.available():
            print(f"{row.name:34} {'':24} {'—':>11} {paper if paper is not None else '–':>12}   not implemented yet "
                  f"({row.requires or 'later issue'})")
            continue
        model = table.paper_model_config(row, args.backbone, args.frames)
        backbone, frames = model["backbone"], model["num_frames"]
        cost = model_cost(model)
        gap = "" if paper is None else f"{(cost.gflops - paper) / paper:+.1%}"
        print(f"{row.name:34} {f'{backbone}, {frames}f':24} {cost.gflops:11.2f} "
              f"{paper if paper is not None else '–':>12} {gap:>7} {cost.gflops_operator:10.2f} "
              f"{cost.gflops_text:7.2f} {cost.params_total / 1e6:9.1f} {cost.params_operator / 1e6:20.2f}")
        note = flops_gap_note(row.name, cost.gflops, cost.gflops_operator, paper, row.flops_note)
        if note:
            notes.append(f"- {note}")
    if notes:
        print("\nGaps over 10%:")
        print("\n".join(notes))


if __name__ == "__main__":
    main()
