#!/usr/bin/env bash
# The autoencoder quality study of docs/evaluation.md (issue 13): Musika autoencoders trained on real
# orchestral music, scored on training, held-out and out-of-domain tracks next to the phase baselines.
#
#   bash scripts/autoencoder_study.sh [WORK_DIR [DEFAULT_MODELS_DIR]]
#       (defaults: runs/autoencoder-study, runs/default-models)
#
# Data (fetched from Debian's archive with apt-get, not committed; GPL-2+ music):
#   wesnoth-1.16-music   41 orchestral tracks; knalgan_theme and silvan_sanctuary are held out by track,
#                        the other 39 (115 min) train every run
#   warzone2100-music    electronic/ambient game music: 4 tracks are the out-of-domain set
# Runs (one thread each, two side by side on 2 cores where they do not depend on each other):
#   debug   level 1 phase 1 -> phase 2 (separate phase U-Net) -> level 2 phase 1: the test-fixture size
#   small   level 1 phase 1 -> phase 2 (separate phase U-Net) -> level 2 phase 1: the CPU preset
#   small-shared-l1p2   phase 2 from the same phase-1 run with the reference's shared output conv,
#                       to compare the two phase-2 recipes (next to small's phase 2)
#   small-angle-l1p2    phase 2 from the same phase-1 run with small's separate phase U-Net but the
#                       reference's phase form (one clipped angle per bin, not demodulated pairs)
# A run directory WORK/small-unet-l1p1, when present, joins the report: the small preset before
# issue 13 (no linear shortcut, lr 3e-4), trained at commit 231ce6f with
#   orchestrion musika train-ae WORK/train --out WORK/small-unet-l1p1 --level 1 --phase 1 --preset small
# Every stage is restartable (a finished stage is skipped, an interrupted one resumes). The last step
# rewrites docs/evaluation.md with scripts/evaluation_report.py; its other sections (FAD, SymphonyNet)
# need the default-model runs of scripts/train_default_models.sh in DEFAULT_MODELS_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${1:-runs/autoencoder-study}
DEFAULTS=${2:-runs/default-models}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
DEFAULTS=$(cd "$DEFAULTS" && pwd)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
O="orchestrion"
# shellcheck source=scripts/training_stages.sh
source "$ROOT/scripts/training_stages.sh"

# ---------------------------------------------------------------- recipe (the numbers in docs/evaluation.md)
DEBUG_L1P1=10000; DEBUG_L1P2=2000; DEBUG_L2P1=2000
SMALL_L1P1=6000       # about 45 min at 2-3 steps/s; the cosine learning rate reaches 0 here (default 20 k)
SMALL_L1P2=400        # phase 2: the phase U-Net only (and the discriminator)
SMALL_L2P1=1500

fetch() {  # fetch PACKAGE DIR: download and unpack one Debian package
  [ -d "$2" ] && return
  mkdir -p "$WORK/debs"
  (cd "$WORK/debs" && apt-get download "$1")
  dpkg-deb -x "$WORK"/debs/"$1"_*.deb "$2"
}

data() {
  cd "$WORK"
  fetch wesnoth-1.16-music wesnoth
  fetch warzone2100-music warzone
  if [ ! -d train ]; then
    mkdir -p train heldout ood
    for f in wesnoth/usr/share/games/wesnoth/1.16/data/core/music/*.ogg; do
      case $(basename "$f") in
        knalgan_theme.ogg | silvan_sanctuary.ogg) ln -sf "$WORK/$f" heldout/ ;;
        *) ln -sf "$WORK/$f" train/ ;;
      esac
    done
    albums=warzone/usr/share/games/warzone2100/music/albums
    for f in original_soundtrack/track1 original_soundtrack/track2 aftermath_soundtrack/menu_enhanced \
      aftermath_soundtrack/track17; do
      ln -sf "$WORK/$albums/$f.opus" "ood/$(basename "$(dirname "$f")")_$(basename "$f").opus"
    done
  fi
}

level2() {  # level2 PRESET STEPS: level 2 phase 1 on PRESET-l1p2
  local p=$1
  if finished "$p-l2p1" "$2"; then echo "== $p-l2p1: done"; return; fi
  level1=(); [ -d "$p-l2p1/checkpoints" ] || level1=(--level1 "$p-l1p2" --preset "$p")
  train "$p-l2p1" "$2" $O musika train-ae train --level 2 --phase 1 "${level1[@]}" --workers 1 \
    --checkpoint-every 500
}

phase2() {  # phase2 RUN STEPS PHASE1_RUN DECODER [PHASE_OUTPUT]
  if finished "$1" "$2"; then echo "== $1: done"; return; fi
  init=(); [ -d "$1/checkpoints" ] || init=(--init "$3" --phase-decoder "$4" ${5:+--phase-output "$5"})
  train "$1" "$2" $O musika train-ae train --level 1 --phase 2 "${init[@]}" --workers 1 --checkpoint-every 100
}

data
cd "$WORK"
{
  train debug-l1p1 $DEBUG_L1P1 $O musika train-ae train --level 1 --phase 1 --preset debug --workers 1
  phase2 debug-l1p2 $DEBUG_L1P2 debug-l1p1 separate
  level2 debug $DEBUG_L2P1
} > debug.log 2>&1 &
debug=$!
train small-l1p1 $SMALL_L1P1 $O musika train-ae train --level 1 --phase 1 --preset small --workers 1 > small.log 2>&1
wait $debug || { echo "debug chain failed, see $WORK/debug.log" >&2; exit 1; }
{
  phase2 small-shared-l1p2 $SMALL_L1P2 small-l1p1 shared
  phase2 small-angle-l1p2 $SMALL_L1P2 small-l1p1 separate angle
} > small-compare.log 2>&1 &
compare=$!
phase2 small-l1p2 $SMALL_L1P2 small-l1p1 separate demodulated >> small.log 2>&1
level2 small $SMALL_L2P1 >> small.log 2>&1
wait $compare || { echo "a comparison phase-2 run failed, see $WORK/small-compare.log" >&2; exit 1; }

# ---------------------------------------------------------------- report
runs="debug-l1p1=$WORK/debug-l1p1,debug-l1p2=$WORK/debug-l1p2,debug-l2p1=$WORK/debug-l2p1"
[ -d "$WORK/small-unet-l1p1" ] && runs+=",small-unet-l1p1=$WORK/small-unet-l1p1"
runs+=",small-l1p1=$WORK/small-l1p1,small-l1p2=$WORK/small-l1p2,small-angle-l1p2=$WORK/small-angle-l1p2"
runs+=",small-shared-l1p2=$WORK/small-shared-l1p2"
runs+=",small-l2p1=$WORK/small-l2p1"
cd "$ROOT"
python scripts/evaluation_report.py \
  --train-audio "$DEFAULTS/train" --heldout-audio "$DEFAULTS/heldout" --midi "$DEFAULTS/midi" \
  --ae-train-audio "$WORK/train" --ae-heldout-audio "$WORK/heldout" --ood-audio "$WORK/ood" \
  --autoencoders "$runs" \
  --out docs/ --overwrite
