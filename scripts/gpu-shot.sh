#!/bin/bash
# One-shot GPU run used on 2026-11-26 (see docs/plugins/audio.md "Budget"): trains the audio models
# (and molecules, from .gpu/molecules/COMMANDS.sh) on one CUDA device at once, then runs the audio
# benchmarks on the device and packs logs into $OUT/logs.tgz. Expects, in the ignored .gpu/ folder:
# cache/audio/spoken-digits-v1/{train,test}.npz (savez_compressed copies of the corpus) and .whl/
# wheels of platformdirs, soundfile, cffi, pycparser for the device Python; entry points come from
# dist-info folders written here, so nothing is pip-installed from the tree.
# usage: [WAVE=0] [ONLY=mel] [MOLLINES=1] [DEADLINE=S] bash scripts/gpu-shot.sh DEVICE AUDIO_BUDGET_S MOL_BUDGET_S full|small
# ($OUT must be set; DEVICE=cpu with PY=.venv/bin/python and SCALE=small is the dry run to do first)
DEVICE=${1:-cuda}; AB=${2:-360}; MB=${3:-420}; SCALE=${4:-full}
T0=$(date +%s)
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0 OMP_NUM_THREADS=4
PY=${PY:-python3}
L=/tmp/gpu_logs; rm -rf $L /tmp/gpu_snap /tmp/gpu_state; mkdir -p $L /tmp/gpu_snap /tmp/gpu_state $OUT
if [ "$DEVICE" = cuda ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1 || echo "wheel install failed" >> $L/pip.log
  # entry points without pip: dist-info folders that importlib.metadata finds on sys.path
  for spec in "condgen-audio:audio:condgen_audio.plugin" "condgen-molecules:molecules:condgen_molecules.plugin"; do
    IFS=: read dist ep mod <<< "$spec"
    d=/tmp/site/${dist//-/_}-0.1.0.dist-info; mkdir -p $d
    printf 'Metadata-Version: 2.1\nName: %s\nVersion: 0.1.0\n' $dist > $d/METADATA
    printf '[condgen]\n%s = %s\n' $ep $mod > $d/entry_points.txt
  done
  d=/tmp/site/condgen-0.1.0.dist-info; mkdir -p $d; printf 'Metadata-Version: 2.1\nName: condgen\nVersion: 0.1.0\n' > $d/METADATA
  export PYTHONPATH=$PWD/core:$PWD/plugins/audio/src:$PWD/plugins/molecules/src:/tmp/site
  nvidia-smi > $L/nvidia-smi.txt 2>&1
fi
export CONDGEN_CACHE=$PWD/.gpu/cache
( while true; do sleep 20; tar czf $OUT/partial.tgz.tmp -C /tmp gpu_logs 2>/dev/null && mv $OUT/partial.tgz.tmp $OUT/logs.tgz; done ) &
P_TAR=$!
$PY -c "import condgen, condgen_audio.train, torch; print('import ok', torch.__version__, torch.cuda.is_available())" > $L/imports.log 2>&1
MODELS="mel vocoder"; [ "${WAVE:-1}" = 1 ] && MODELS="mel vocoder wave"; MODELS=${ONLY:-$MODELS}
for m in $MODELS; do
  extra=""; [ $m = wave ] && extra="--snapshot-dir /tmp/gpu_snap --snapshot-fractions 0.1,0.25,0.5,0.75"
  recipe=$m; [ $m = vocoder ] && recipe=vocoder-gpu
  $PY -m condgen_audio.train $recipe $OUT/audio-$m.safetensors --device $DEVICE --budget-s $AB --state-dir /tmp/gpu_state $extra > $L/train-$m.log 2>&1 &
  eval "P_$m=$!"
done
if [ -f .gpu/molecules/COMMANDS.sh ] && [ "$MB" != 0 ]; then
  (sed "s/--budget-s [0-9]*/--budget-s $MB/g; s/--device [a-z]*/--device $DEVICE/g; s|^python3 |$PY |" .gpu/molecules/COMMANDS.sh | grep -v '^#' | grep . | head -n ${MOLLINES:-9} | nl -ba | while read i cmd; do
     eval "$cmd" > $L/train-molecules-$i.log 2>&1 &
   done; wait) &
  P_MOL=$!
fi
wait $P_mel $P_vocoder $P_wave
echo "audio training done at $(( $(date +%s) - T0 ))s" >> $L/timeline.log
cp .gpu/prev/*.safetensors $OUT/audio-*.safetensors plugins/audio/src/condgen_audio/weights/ 2>> $L/timeline.log
if [ "$SCALE" = full ]; then N=500; N50=500; CL=100; WN=200; else N=20; N50=10; CL=6; WN=10; fi
B="$PY benchmarks/audio_quality.py --write --device $DEVICE --machine 'NVIDIA H200 (shared with the other training jobs of the run)'"
left() { echo $(( ${DEADLINE:-560} - ( $(date +%s) - T0 ) )); }
for part in "cascade6 --n $N" "vocoder --clips $CL" "cascade50 --n50 $N50" "mels --n $N --clips $CL" "wave --wave-n $WN --snapshots $(ls /tmp/gpu_snap/*.safetensors 2>/dev/null | tr '\n' ' ')"; do
  set -- $part
  [ "$1" = wave ] && [ -z "$(ls /tmp/gpu_snap 2>/dev/null)" ] && continue
  [ $(left) -lt 25 ] && { echo "skip $1: $(left)s left" >> $L/timeline.log; continue; }
  eval timeout $(( $(left) - 20 )) $B --parts $part >> $L/bench-$1.log 2>&1
  echo "bench $1 rc=$? at $(( $(date +%s) - T0 ))s" >> $L/timeline.log
done
[ -n "$P_MOL" ] && wait $P_MOL
echo "all done at $(( $(date +%s) - T0 ))s" >> $L/timeline.log
cp benchmarks/audio_*.json $L/ 2>/dev/null; mkdir -p $L/pictures; cp docs/plugins/audio/*.png $L/pictures/ 2>/dev/null
kill $P_TAR 2>/dev/null; sleep 1; rm -f $OUT/partial.tgz.tmp; tar czf $OUT/logs.tgz -C /tmp gpu_logs
ls -la $OUT
