# Writes one ablation row's run config (computed in common.smk from the profile and the ablation file).
from pathlib import Path

import yaml

Path(snakemake.output[0]).write_text(yaml.safe_dump(snakemake.params.config, sort_keys=False))  # noqa: F821
Path(snakemake.log[0]).write_text(f"wrote {snakemake.output[0]}\n")  # noqa: F821
