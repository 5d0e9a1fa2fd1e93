"""How far apart a CLIP text tower puts a dataset's class prompts: the cosine similarity of each time-reversed twin
pair's prompt embeddings, and the mean and largest similarity between other classes.

    python analysis/text_separability.py resources/pretrained/ILA-mini-32.pt data/synth-default/labels.csv \
        [--backbone ILA-mini-32] [--template "a video of {}."]

With a frozen text head a class can only win over its twin by ``logit_scale * (cos_true - cos_twin)``; twin prompts
embedded almost alike leave a video model next to nothing to separate them with. This is why the embedded default
uses a linear head: run this on the pretrained mini-CLIP to see the figures.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from ila.data.annotations import read_labels
from ila.models.backbone import build_clip, tokenizer_for


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="a CLIP checkpoint file, or an open_clip pretrained tag")
    p.add_argument("labels", help="labels.csv (id,name,group,twin,flip_to)")
    p.add_argument("--backbone", default="ILA-mini-32")
    p.add_argument("--template", default="a video of {}.")
    args = p.parse_args()
    classes = read_labels(args.labels)
    clip = build_clip(args.backbone, args.weights).eval()
    tokens = tokenizer_for(args.backbone)([args.template.format(c.name) for c in classes])
    with torch.no_grad():
        emb = F.normalize(clip.encode_text(tokens), dim=-1)
    sim = emb @ emb.T
    print(f"logit scale: {clip.logit_scale.exp().item():.2f}")
    print("time-reversed twins:")
    for c in classes:
        if c.twin is not None and c.id < c.twin:
            twin = classes[c.twin]
            print(f"  {sim[c.id, c.twin].item():.4f}  {c.name!r} / {twin.name!r}")
    others = sim[~torch.eye(len(classes), dtype=torch.bool)]
    print(f"all pairs of different classes: mean {others.mean().item():.4f}, max {others.max().item():.4f}")


if __name__ == "__main__":
    main()
