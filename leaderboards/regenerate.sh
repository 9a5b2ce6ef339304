#!/usr/bin/env bash
# Regenerates every file under leaderboards/ from real runs: tables with `estagbench reproduce`,
# figures with `estagbench rollout` and `estagbench plot`. Nothing here is edited by hand.
#
# One budget per table, the same for every model of the table, recorded in each file's header:
#   EPOCHS_T1 ... EPOCHS_T8 (default: EPOCHS, default 500, the paper's), SEEDS (default 1,2,3).
# Finished cells are stored under $OUT and skipped on a rerun, so an interrupted run resumes.
#   MODELS_T1, MODELS_T2, MODELS_T3: comma lists restricting a table's rows (default: every row the paper has)
#   ROLLOUT_EPOCHS, ROLLOUT_SEEDS: budget of the Figure 5 rollout models (default: EPOCHS_T1, SEEDS)
#   JOBS              cells run at once in worker processes (default 1; same numbers either way)
#   ONLY="1 3"        regenerate only these parts (1, 2, 3 = tables; 4, 5, 7 = the MD17 ablations, L sweep and w_k
#                     ablation on ethanol; 8 = the protein ablations on adk-mini; 6 = the T sweep and its figure;
#                     fig = ethanol figures)
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

if want 1; then  # Table 1: MD17, the ethanol slice available here (non-official: first 2000 frames)
  $EB reproduce --table 1 "${ETHANOL[@]}" --epochs "${EPOCHS_T1:-$EPOCHS}" --seeds "$SEEDS" ${MODELS_T1:+--models "$MODELS_T1"} \
    --out "$OUT" --tables-out "$LB" --compare-paper --no-progress --jobs "$JOBS"
fi
if want 2; then  # Table 2: protein; adk-mini (the MDAnalysisTests DIMS paths) is what runs offline
  $EB reproduce --table 2 --dataset adk-mini --epochs "${EPOCHS_T2:-$EPOCHS}" --seeds "$SEEDS" ${MODELS_T2:+--models "$MODELS_T2"} \
    --out "$OUT" --tables-out "$LB" --compare-paper --no-progress --jobs "$JOBS"
fi
if want 3; then  # Table 3: motion; walk from the 30 fps conversions of subject 35 (no basketball data here)
  $EB reproduce --table 3 --dataset motion-walk-30fps --epochs "${EPOCHS_T3:-$EPOCHS}" --seeds "$SEEDS" ${MODELS_T3:+--models "$MODELS_T3"} \
    --out "$OUT" --tables-out "$LB" --compare-paper --no-progress --jobs "$JOBS"
fi
if want 6; then  # Table 6 and Figure 12: ESTAG on ethanol against the history T
  $EB reproduce --table 6 "${ETHANOL[@]}" --epochs "${EPOCHS_T6:-$EPOCHS}" --seeds "$SEEDS" \
    --out "$OUT" --tables-out "$LB" --compare-paper --no-progress --jobs "$JOBS"
  $EB plot tsweep --results "$OUT" --epochs "${EPOCHS_T6:-$EPOCHS}" --out "$LB/figures"
fi
for t in 4 5 7; do  # Tables 4, 5, 7: ESTAG ablations, L = 1..6 and w/o w_k on the ethanol slice
  if want "$t"; then
    e=EPOCHS_T$t
    $EB reproduce --table "$t" "${ETHANOL[@]}" --epochs "${!e:-$EPOCHS}" --seeds "$SEEDS" \
      --out "$OUT" --tables-out "$LB" --compare-paper --no-progress --jobs "$JOBS"
  fi
done
if want 8; then  # Table 8: ESTAG ablations on protein (adk-mini, as Table 2)
  $EB reproduce --table 8 --dataset adk-mini --epochs "${EPOCHS_T8:-$EPOCHS}" --seeds "$SEEDS" \
    --out "$OUT" --tables-out "$LB" --compare-paper --no-progress --jobs "$JOBS"
fi
if want fig; then  # ethanol figures from the Table 1 runs (same budget), plus the rollout of Figure 5
  E1=${EPOCHS_T1:-$EPOCHS}
  $EB rollout --models estag-full-attn,st-egnn --dataset md17 "${ETHANOL[@]}" --steps 10 --epochs "${ROLLOUT_EPOCHS:-$E1}" \
    --seeds "${ROLLOUT_SEEDS:-$SEEDS}" --out "$OUT" --no-progress
  $EB plot rollout --results "$OUT" --case ethanol --out "$LB/figures"
  $EB plot curves --results "$OUT" --case ethanol --epochs "$E1" --out "$LB/figures" \
    --models pt-t,egnn-t,st-gnn,st-tfn,st-se3,st-egnn,eqmotion,stgcn,agl-stan,estag
  $EB plot attention --results "$OUT" --case ethanol --epochs "$E1" --seed 1 --out "$LB/figures"
  $EB plot sample --results "$OUT" --case ethanol --epochs "$E1" --seed 1 --models estag,st-egnn --out "$LB/figures"
fi
