#!/usr/bin/env bash
# The GPU checks of issue 11, as one script (about 5-8 minutes on one GPU). Run from the repository root:
#     bash scripts/device_check.sh            # writes its log and figures to ${OUT:-device_check}/
# 1. bench_epoch on cuda: kdrun's on-device data path + bf16 + channels_last vs a RepDistiller-style loop
# 2. a bf16 smoke run of two methods (a logit and a feature method) on CIFAR-shaped data
# 3. a packed sweep: 2 jobs at once on the GPU(s) vs the same jobs one after another
# 4. data-parallel with nccl over the GPUs present (needs >= 2; with one GPU, a 1-rank nccl all-reduce)
set -euo pipefail
OUT=${OUT:-device_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/summary.txt"; }
GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
log "GPUs: $GPUS; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1); cores: $(nproc)"
SMALL=(dataset=synthetic dataset.size=32 dataset.num_classes=100 dataset.num_train=4096 dataset.num_test=1024
       teacher=resnet56 student=resnet20 measure.enabled=false device=cuda)

log "1. bench_epoch (cuda, 20% of an epoch)"
timeout 240 python scripts/bench_epoch.py --device cuda --fraction 0.2 --rounds 2 --workers 8 \
  | tee "$OUT/bench_epoch.txt" | tail -4 | tee -a "$OUT/summary.txt"

log "2. bf16 smoke: kd and fitnet"
timeout 120 python -m kdrun -m "${SMALL[@]}" debug=fast device.amp=bf16 method=kd,fitnet \
  paths.outputs="$OUT/smoke" hydra.sweep.dir="$OUT/smoke/sweep" > "$OUT/smoke.log" 2>&1
python - "$OUT/smoke/sweep" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys, pathlib
for r in sorted(pathlib.Path(sys.argv[1]).glob("*/results.json")):
    d = json.loads(r.read_text())
    print(r.parent.name, d["status"], d["speed"], {k: v["best_top1"] for k, v in d["stages"].items()})
PY

log "3. packed sweep: 2 jobs at once vs one after another"
for mode in sequential packed; do
  launcher=(); [ "$mode" = packed ] && launcher=(hydra/launcher=joblib hydra.launcher.n_jobs=2)
  start=$(date +%s.%N)
  timeout 150 python -m kdrun -m "${SMALL[@]}" trainer.epochs=2 stages=[teacher,distilled] seed=0,1 "${launcher[@]}" \
    paths.outputs="$OUT/$mode" hydra.sweep.dir="$OUT/$mode/sweep" > "$OUT/$mode.log" 2>&1
  echo "$mode $(python -c "import time; print(round(time.time() - $start, 1))") s" | tee -a "$OUT/summary.txt"
done
grep -h "using GPU" "$OUT"/packed/sweep/*/kdrun.log | tee -a "$OUT/summary.txt" || true

log "4. data-parallel, nccl"
if [ "$GPUS" -ge 2 ]; then
  timeout 120 python -m kdrun "${SMALL[@]}" debug=fast device.nproc="$GPUS" device.backend=nccl \
    trainer.batch_size=128 paths.outputs="$OUT/ddp" hydra.run.dir="$OUT/ddp/run" > "$OUT/ddp.log" 2>&1
  python -c "import json; d=json.load(open('$OUT/ddp/run/results.json')); print('ddp', d['status'], d['speed'])" \
    | tee -a "$OUT/summary.txt"
else
  cat > "$OUT/nccl_check.py" <<'PY'
import torch, torch.distributed as dist
dist.init_process_group("nccl")
t = torch.ones(4, device="cuda")
dist.all_reduce(t)
print(f"one GPU: kdrun's data-parallel needs >= 2; nccl all-reduce with world size {dist.get_world_size()}: {t.tolist()}")
dist.destroy_process_group()
PY
  timeout 60 torchrun --nproc_per_node=1 "$OUT/nccl_check.py" 2>&1 | tail -1 | tee -a "$OUT/summary.txt"
fi
log "done"
