"""Running the workflow from tests: Snakemake on the repository's Snakefile, in a scratch directory, with the tests'
environment (this interpreter's scripts first on PATH, no hub access, one OpenMP thread, and no SLURM variables
leaking in from a job the tests themselves may run in)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def workflow_env(**extra: str) -> dict[str, str]:
    bindir = os.path.dirname(sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    return {**env, "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", **extra}


def snakemake(*args: str, cwd, env: dict[str, str] | None = None, timeout: int = 600, snakefile: Path | None = None):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile or REPO / "Snakefile"), "--directory", str(cwd),
           *args]
    return subprocess.run(cmd, cwd=cwd, env=env or workflow_env(), capture_output=True, text=True, timeout=timeout)
