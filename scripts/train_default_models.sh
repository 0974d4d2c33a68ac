#!/usr/bin/env bash
# Retrain the bundled default models from the built-in corpora, with the project's own commands.
#
#   bash scripts/train_default_models.sh [WORK_DIR [musika|symphony|all]]   (default: runs/default-models all)
#
# Every stage is restartable: a finished stage is skipped, an interrupted one resumes from its last
# checkpoint, so the script can be killed and started again at any time. Each training runs on one
# thread (on 2 cores, torch with 2 threads was ~5x slower for these small models); the Musika chain
# and the SymphonyNet run are independent and run side by side. On 2 cores of an AMD EPYC (Zen 4)
# the whole script took about 2.5 hours. The last stage exports the weights-only models into
# src/orchestrion/models/ (fp16 decoders/generator/transformer, fp32 encoders) with their model cards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${1:-runs/default-models}
PARTS=${2:-all}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
O="orchestrion"
# shellcheck source=scripts/training_stages.sh
source "$ROOT/scripts/training_stages.sh"

# ---------------------------------------------------------------- recipe (the numbers in the model cards)
# The shipped musika-default autoencoder predates the small preset's issue-13 recipe (linear shortcut,
# phase 1 at lr 1e-3, separate phase U-Net): it was trained with phase 2 at batch 16 and --lambda-rec 20
# on the shared output conv. This script now trains the new recipe.
L1P1_STEPS=4000      # level 1, phase 1 (magnitude reconstruction), small preset, batch 32
L1P2_STEPS=400       # level 1, phase 2 (the phase U-Net, adversarial + multi-scale), batch 32
L2P1_STEPS=1500      # level 2, phase 1, batch 32
GAN_STEPS=10000      # latent GAN, small preset, conditional on note density and tempo
SYM_STEPS=1500       # SymphonyNet small, windows of 512 steps, global batch 8
SYM_BPE_MERGES=300   # Music BPE merges learned on the corpus

musika_chain() {
  cd "$WORK"
  # Audio: the two built-in corpora rendered with the default soundfont; every 10th file held out.
  [ -d render_chorales ] || $O corpus render bach-chorales render_chorales
  [ -d render_quartets ] || $O corpus render string-quartets render_quartets
  if [ ! -d train ]; then
    mkdir -p train heldout
    i=0
    for f in render_chorales/*.wav render_quartets/*.wav; do
      i=$((i + 1))
      if [ $((i % 10)) -eq 0 ]; then ln -sf "../$f" heldout/; else ln -sf "../$f" train/; fi
    done
  fi
  train l1p1 $L1P1_STEPS $O musika train-ae train --level 1 --phase 1 --preset small --checkpoint-every 500 --workers 1
  if ! finished l1p2 $L1P2_STEPS; then
    init=(); [ -d l1p2/checkpoints ] || init=(--init l1p1)
    train l1p2 $L1P2_STEPS $O musika train-ae train --level 1 --phase 2 "${init[@]}" --checkpoint-every 100 \
      --workers 1
  fi
  if ! finished l2p1 $L2P1_STEPS; then
    level1=(); [ -d l2p1/checkpoints ] || level1=(--level1 l1p2 --preset small)
    train l2p1 $L2P1_STEPS $O musika train-ae train --level 2 --phase 1 "${level1[@]}" --checkpoint-every 500 \
      --workers 1
  fi
  # The GAN's data: every 4th training chorale, all parts on strings (2 of 3) or organ (1 of 3), each at a
  # random tempo of 40-200 BPM (83 files, 50 min). The corpora at their written tempi, sung or bowed
  # legato, gave madmom so few onsets that the note-density curve was ~0 almost everywhere.
  [ -d gan_audio ] || python "$ROOT/scripts/tempo_variants.py" render_chorales/midi gan_audio --only train --every 4
  [ -f latents/manifest.json ] || $O musika prepare-latents gan_audio --model l2p1 --out latents --min-frames 128 -j 1
  train gan $GAN_STEPS $O musika train-gan latents --preset small --conditional --checkpoint-every 250 \
    --preview-every 1000 --workers 1
}

symphony_run() {
  cd "$WORK"
  [ -d midi/chorales ] || $O corpus export bach-chorales midi/chorales
  [ -d midi/quartets ] || $O corpus export string-quartets midi/quartets
  [ -d midi/demo ] || $O corpus export demo midi/demo
  [ -f tokens/manifest.json ] || $O symphony tokenize midi --out tokens --learn-bpe $SYM_BPE_MERGES -j 1
  train symphony $SYM_STEPS $O symphony train tokens --preset small --window 512 --batch-size 8 --warmup 100 \
    --lr 1e-3 --checkpoint-every 100 --log-every 20 --workers 0 --valid-fraction 0.05
}

case $PARTS in
  musika) musika_chain; exit ;;
  symphony) symphony_run; exit ;;
  all) ;;
  *) echo "unknown part '$PARTS': musika, symphony or all" >&2; exit 2 ;;
esac
musika_chain > "$WORK/musika.log" 2>&1 &
musika=$!
symphony_run > "$WORK/symphony.log" 2>&1 &
symphony=$!
wait $musika || { echo "Musika chain failed, see $WORK/musika.log" >&2; exit 1; }
wait $symphony || { echo "SymphonyNet run failed, see $WORK/symphony.log" >&2; exit 1; }

# ---------------------------------------------------------------- ship
python "$ROOT/scripts/model_cards.py" --work "$WORK" --out "$ROOT/src/orchestrion/models"
