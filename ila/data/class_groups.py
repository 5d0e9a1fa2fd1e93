"""The Kinetics-400 classes of the temporal understanding benchmark of Sevilla-Lara et al., "Only Time Can Tell:
Discovering Temporal Data for Temporal Modeling" (WACV 2021), which the ILA paper's Table 13 measures.

The benchmark's Temporal-50 and Static-50 each hold 32 Kinetics-400 classes and 18 Something-Something-V1 classes.
A model trained on Kinetics-400 is scored on the Kinetics-400 part: the 32 + 32 classes below. The lists are
published as class indices (into Kinetics-400's alphabetical class list) in ``video_datasets_api/onlytimecantell/
definitions.py`` of github.com/kiyoon/video_datasets_api (commit 1a6fa5a81c9ddd826ce7cdb790b1fd83b5daeaa8, March 2021;
its author works with the benchmark's first author, and PyVideoAI's ``onlytimecantell`` dataset configs read them);
they are written here as the class names those indices select, spelt as in Kinetics-400's annotation CSVs.
"""

from __future__ import annotations

KINETICS400_TEMPORAL = (
    "bouncing on trampoline", "breakdancing", "busking", "cartwheeling", "cleaning shoes", "country line dancing",
    "drop kicking", "gymnastics tumbling", "hammer throw", "high kick", "jumpstyle dancing", "kitesurfing",
    "parasailing", "playing cards", "playing cymbals", "playing drums", "playing ice hockey", "robot dancing",
    "shining shoes", "shuffling cards", "side kick", "ski jumping", "skiing (not slalom or crosscountry)",
    "skiing crosscountry", "skiing slalom", "snowboarding", "somersaulting", "tap dancing", "throwing ball",
    "throwing discus", "vault", "wrestling",
)  # fmt: skip

KINETICS400_STATIC = (
    "belly dancing", "bending back", "blasting sand", "blowing nose", "changing wheel", "clapping", "curling hair",
    "deadlifting", "dining", "doing aerobics", "dribbling basketball", "eating doughnuts", "filling eyebrows",
    "getting a tattoo", "laying bricks", "long jump", "lunge", "making bed", "moving furniture", "mowing lawn",
    "peeling apples", "playing badminton", "playing controller", "playing cricket", "pull ups", "riding camel",
    "shot put", "testifying", "trimming trees", "waxing eyebrows", "yawning", "yoga",
)  # fmt: skip


def kinetics400_group(name: str) -> str:
    """``temporal``, ``static`` or ``""`` for a Kinetics-400 class name (the labels file's ``group`` column)."""
    if name in KINETICS400_TEMPORAL:
        return "temporal"
    return "static" if name in KINETICS400_STATIC else ""
