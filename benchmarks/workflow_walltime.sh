#!/usr/bin/env bash
# Cold wall time of the README's main line on this machine: a fresh clone, a fresh virtual environment,
#   pip install -e . && snakemake --cores all <target>
# then a second snakemake invocation, which must have nothing to do.
#   [TARGET=tables] bash benchmarks/workflow_walltime.sh [REPO]      (default: every table; this repository)
# TARGET=results/table4.csv times Table 4 alone.
# The virtual environment (several GB: torch's CUDA build) is removed at the end unless KEEP_VENV=1; the clone with
# its results stays for inspection (its path is printed).
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
work=$(mktemp -d)
git clone -q "$repo" "$work/clone"
cd "$work/clone"
python3 -m venv "$work/venv"
[ "${KEEP_VENV:-0}" = 1 ] || trap 'rm -rf "$work/venv"' EXIT
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
export HF_HUB_OFFLINE=1
t0=$(date +%s)
pip install -q -e . > "$work/pip.log" 2>&1
t1=$(date +%s)
target=${TARGET:-tables}
snakemake --cores all "$target" > "$work/snakemake.log" 2>&1
t2=$(date +%s)
again=$(snakemake --cores all "$target" -n 2>&1 | tail -1)
echo "clone: $work/clone"
echo "pip install -e .                 $((t1 - t0)) s"
echo "snakemake --cores all $target    $((t2 - t1)) s   (cores: $(nproc))"
echo "second invocation: $again"
for md in results/table*.md; do echo; cat "$md"; done
