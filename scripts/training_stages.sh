# Restartable training stages for the scripts in this folder (sourced, not run).
#   finished RUN STEPS        true when RUN has its checkpoint at STEPS
#   train RUN STEPS CMD...    run CMD --out RUN --steps STEPS, resuming RUN if it has checkpoints,
#                             skipping it if it is finished

finished() {
  [ -d "$1/checkpoints/step_$(printf '%08d' "$2")" ]
}

train() {
  local run=$1 steps=$2
  shift 2
  if finished "$run" "$steps"; then echo "== $run: done"; return; fi
  local resume=()
  [ -d "$run/checkpoints" ] && resume=(--resume)
  echo "== $run: training to step $steps"
  "$@" --out "$run" --steps "$steps" "${resume[@]}"
}
