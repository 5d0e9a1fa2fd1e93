"""What decides a run's digits, recorded beside them: the library versions, the CPU kernels and thread count, the
CPU, the environment variables that steer the math libraries, the device and the determinism switch.

The same config and seed give the same numbers only on the same software and kernels: torch picks its CPU kernels
by the CPU's capability (AVX2, AVX-512, AMX), MKL and oneDNN pick theirs by instruction set unless pinned
(``MKL_CBWR``, ``ONEDNN_MAX_CPU_ISA``), and the thread count changes the order of floating-point sums. Each
``ila train`` and ``ila evaluate`` records these once (:func:`record_environment`, called by
:func:`ila.engine.command.run_command`), so that two runs' digits can be told apart by what produced them instead of
by guesswork: in the run directory's ``environment.json`` (one entry per command) and as MLflow tags
``env.<command>.<key>``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
from importlib import metadata
from pathlib import Path

import torch

from ila.paths import write_json

log = logging.getLogger(__name__)

ENVIRONMENT_FILE = "environment.json"
TAG_PREFIX = "env."
# Distributions whose versions decide the numbers (the project's own included), by their installed names.
PACKAGES = ("torch", "numpy", "open_clip_torch", "timm", "scipy", "av", "mlflow", "ila-repro")
# Environment variables that change which kernels run (CPU dispatch, MKL's and oneDNN's instruction sets, cuBLAS's
# workspace, which deterministic cuBLAS needs) or how many threads split a sum; recorded only when set.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
                    "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")
CPUINFO = Path("/proc/cpuinfo")
_MKL = re.compile(r"Math Kernel Library Version (\S+?)(?:-Product)?\s+Build (\d+)")
_ONEDNN = re.compile(r"(?:MKL-DNN|oneDNN) v(\S+)")


def environment(device: torch.device, world_size: int = 1, environ: dict[str, str] | None = None) -> dict[str, str]:
    """What decides this process's numbers, as flat ``key -> text`` (MLflow tags are text). ``environ``: the
    environment variables to read (default: this process's)."""
    environ = os.environ if environ is None else environ
    config = torch.__config__.show()
    out = {"python": platform.python_version()}
    out |= {f"version.{name}": _version(name) for name in PACKAGES}
    out["version.torch"] = torch.__version__  # with its build's local tag (+cpu, +cu130), which the metadata lacks
    out |= {
        "torch.cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch.num_threads": str(torch.get_num_threads()),
        "torch.mkl": _built_with(torch.backends.mkl.is_available(), _MKL, config, "{} build {}"),
        "torch.onednn": _built_with(torch.backends.mkldnn.is_available(), _ONEDNN, config, "{}"),
        "torch.float32_matmul_precision": torch.get_float32_matmul_precision(),
        "torch.deterministic_algorithms": _deterministic(),
        **_cpu(),
        **{f"environ.{name}": environ[name] for name in KERNEL_VARIABLES if name in environ},
        "device": _device_name(device),
        "world_size": str(world_size),
    }  # fmt: skip
    if device.type == "cuda":
        out |= {"torch.cuda": str(torch.version.cuda), "torch.cudnn": str(torch.backends.cudnn.version()),
                "torch.allow_tf32": str(torch.backends.cuda.matmul.allow_tf32).lower()}
    return out


def record_environment(run_dir: Path, command: str, env: dict[str, str]) -> dict[str, str]:
    """Write ``env`` as ``command``'s entry of ``<run_dir>/environment.json`` (written whole: the other commands'
    entries kept) and return it as MLflow tags. A command that ran before with other values (a training resumed on
    another machine or after an upgrade) is logged as a warning: its numbers then come from both."""
    path = run_dir / ENVIRONMENT_FILE
    recorded = _read(path)
    before = recorded.get(command) or {}
    changed = sorted(k for k in before.keys() | env.keys() if before and before.get(k) != env.get(k))
    if changed:
        log.warning("%s: %s ran before in another environment; now %s", path, command,
                    ", ".join(f"{k}={env.get(k)} (was {before.get(k)})" for k in changed))
    write_json({**recorded, command: env}, path)
    return {f"{TAG_PREFIX}{command}.{key}": value for key, value in env.items()}


def _read(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        data = exc
    if not isinstance(data, dict):  # a record, read by no computation: start it again, saying so
        log.warning("%s: not an object of commands (%s); writing it afresh", path, data)
        return {}
    return data


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _built_with(available: bool, pattern: re.Pattern, config: str, form: str) -> str:
    """A library's version as torch's build configuration states it ("none": torch was built without it)."""
    if not available:
        return "none"
    found = pattern.search(config)
    return form.format(*found.groups()) if found else "unknown"


def _deterministic() -> str:
    if not torch.are_deterministic_algorithms_enabled():
        return "false"
    return "warn only" if torch.is_deterministic_algorithms_warn_only_enabled() else "true"


def _cpu() -> dict[str, str]:
    """The CPU's model and the bf16 instructions that change which kernels oneDNN runs (/proc/cpuinfo on Linux;
    "unknown" where it is missing)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        text = ""
    model = re.search(r"^(?:model name|Model|Processor)\s*:\s*(.+)$", text, re.M)
    flags_line = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.M)
    flags = set(flags_line.group(1).split()) if flags_line else None
    amx = sorted(f for f in flags or () if f.startswith("amx"))
    return {
        "cpu.model": model.group(1).strip() if model else (platform.processor() or platform.machine() or "unknown"),
        "cpu.avx512_bf16": "unknown" if flags is None else str("avx512_bf16" in flags).lower(),
        "cpu.amx": "unknown" if flags is None else (" ".join(amx) or "none"),
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return device.type
