"""Shared wording for tables: how the FLOPs convention is stated and how a gap to the paper is explained."""

from __future__ import annotations

FLOPS_CONVENTION = (
    "GFLOPs per view in the fvcore convention (1 multiply-add = 1 FLOP; one video [1,T,3,H,W] plus one text "
    "[1,77]; attention matmuls included; norms, softmax and activations not counted), counted on the meta device"
)


def flops_gap_note(name: str, ours: float, operator: float, paper: float, reason: str | None = None) -> str | None:
    """The counted breakdown behind a gap of more than 10% to the paper's figure, with the row's explanation."""
    if paper is None or abs(ours - paper) / paper <= 0.10:
        return None
    rest = ours - operator
    return (
        f"{name}: {ours:.2f} G vs the paper's {paper} G ({(ours - paper) / paper:+.1%}). Without its temporal operator "
        f"the row counts {rest:.2f} G; the operator alone counts {operator:.2f} G, where the paper's figure leaves "
        f"about {paper - rest:.2f} G for it. "
        + (reason or "The paper does not give the layer sizes behind its figure.")
    )
