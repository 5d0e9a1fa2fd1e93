"""ILA reproduction suite: data, models, training and analysis for the ICCV 2023 ILA paper."""

__version__ = "0.1.0"
