#!/usr/bin/env bash
# Regenerates every file under leaderboards/ from real runs: tables with `estagbench reproduce`,
# figures with `estagbench rollout` and `estagbench plot`. Nothing here is edited by hand.
#
# One budget per table, the same for every model of the table, recorded in each file's header:
#   EPOCHS_T1 ... EPOCHS_T9 (default: EPOCHS, default 500, the paper's), SEEDS (default 1,2,3).
# Finished cells are stored under $OUT and skipped on a rerun, so an interrupted run resumes.
#   MODELS_T1 ... MODELS_T9: comma lists restricting a table's rows (default: every row the paper has)
#   ROLLOUT_EPOCHS, ROLLOUT_SEEDS: budget of the Figure 5 rollout models (default: EPOCHS_T1, SEEDS)
#   JOBS              cells run at once in worker processes (default 1; same numbers either way)
#   ONLY="1 3"        regenerate only these parts (1, 2, 3 = tables; 4, 5, 7 = the MD17 ablations, L sweep and w_k
#                     ablation on ethanol; 8 = the protein ablations on adk-mini; 9 = the motion ablations on
#                     walk; 6 = the T sweep and its figure; fig = ethanol figures)
#   ESTAGBENCH_DATA   the data folder (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."

EPOCHS=${EPOCHS:-500}
SEEDS=${SEEDS:-1,2,3}
OUT=${OUT:-estagbench-results}
ONLY=${ONLY:-"1 2 3 fig"}
JOBS=${JOBS:-1}
export ESTAGBENCH_DATA=${ESTAGBENCH_DATA:-$(cd .. && pwd)/shared/data}
EB=${EB:-estagbench}
LB=${LB:-leaderboards}
ETHANOL=(--molecules ethanol --split-margin 0 --split-fractions 0.3,0.15,0.15)

want() { [[ " $ONLY " == *" $1 "* ]]; }
epochs() { local v="EPOCHS_T$1"; echo "${!v:-$EPOCHS}"; }   # the budget of table $1
models() { local v="MODELS_T$1"; [[ -n "${!v:-}" ]] && echo "--models ${!v}"; return 0; }
# reproduce N ARGS...: run table N's cells (resuming stored ones) and write it to $LB, with one budget for all rows
reproduce() {
  local t=$1; shift
  # shellcheck disable=SC2046  # models() expands to two words or none
  $EB reproduce --table "$t" "$@" --epochs "$(epochs "$t")" --seeds "$SEEDS" $(models "$t") \
    --out "$OUT" --tables-out "$LB" --compare-paper --no-progress --jobs "$JOBS"
}

want 1 && reproduce 1 "${ETHANOL[@]}"                    # MD17: the ethanol slice available here (non-official)
want 2 && reproduce 2 --dataset adk-mini                 # protein: the MDAnalysisTests DIMS paths run offline
want 3 && reproduce 3 --dataset motion-walk-30fps        # motion: subject 35 walk at 30 fps (no basketball here)
for t in 4 5 7; do                                       # ESTAG ablations, L = 1..6 and w/o w_k on ethanol
  want "$t" && reproduce "$t" "${ETHANOL[@]}"
done
want 8 && reproduce 8 --dataset adk-mini                 # ESTAG ablations on protein (as Table 2)
want 9 && reproduce 9 --dataset motion-walk-30fps        # ESTAG ablations on motion (as Table 3)
if want 6; then                                          # Table 6 and Figure 12: ESTAG on ethanol against T
  reproduce 6 "${ETHANOL[@]}"
  $EB plot tsweep --results "$OUT" --epochs "$(epochs 6)" --out "$LB/figures"
fi
if want fig; then  # ethanol figures from the Table 1 runs (same budget), plus the rollout of Figure 5
  E1=$(epochs 1)
  $EB rollout --models estag-full-attn,st-egnn --dataset md17 "${ETHANOL[@]}" --steps 10 --epochs "${ROLLOUT_EPOCHS:-$E1}" \
    --seeds "${ROLLOUT_SEEDS:-$SEEDS}" --out "$OUT" --no-progress
  $EB plot rollout --results "$OUT" --case ethanol --out "$LB/figures"
  $EB plot curves --results "$OUT" --case ethanol --epochs "$E1" --out "$LB/figures" \
    --models pt-t,egnn-t,st-gnn,st-tfn,st-se3,st-egnn,eqmotion,stgcn,agl-stan,estag
  $EB plot attention --results "$OUT" --case ethanol --epochs "$E1" --seed 1 --out "$LB/figures"
  $EB plot sample --results "$OUT" --case ethanol --epochs "$E1" --seed 1 --models estag,st-egnn --out "$LB/figures"
fi
