#!/usr/bin/env bash
# The GPU path, checked in one go on a CUDA machine (a few minutes): bash benchmarks/gpu_check.sh
# The tests (the GPU ones no longer skip), train.py on the GPU (default, configs/gpu.yaml, bf16-mixed), the
# benchmark's throughput on the GPU, a SIGKILL mid-run then a resume that must end bitwise equal to an
# uninterrupted run, and with 2+ GPUs a 2-device DDP run. Logs in runs/gpu_check/; one table at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import sys, torch; sys.exit(not torch.cuda.is_available())" || { echo "no CUDA GPU here: nothing to check" >&2; exit 2; }
out=runs/gpu_check && rm -rf "$out" && mkdir -p "$out"
export WANDB_MODE=offline
table=()
check() {  # check NAME COMMAND...: runs it, logs it, adds a row (status, seconds, its val NLL line)
  local name=$1 start=$SECONDS status=ok; shift
  "$@" > "$out/$name.log" 2>&1 || status="FAILED (see $out/$name.log)"
  table+=("$(printf '%-16s %-6s %5ds  %s' "$name" "$status" $((SECONDS - start)) "$(grep -m1 -E '^val NLL|passed|steps/s' "$out/$name.log")")")
}
names=${BIGRAM_NAMES_TXT:-../shared/data/names.txt}  # (a machine without a network cannot download it)
[ -f "$names" ] || names=data/names.txt
train=(python train.py --accelerator gpu --devices 1 --quiet --logger csv --pictures false --data.path "$names")
check tests python -m pytest -q -x -m "not slow" tests
check gpu-tests python -m pytest -q -x -k "gpu or cuda" tests
check default "${train[@]}" --runs_dir "$out/default"
check config-gpu "${train[@]}" --config gpu --runs_dir "$out/config-gpu"
check bf16-mixed "${train[@]}" --precision bf16-mixed --runs_dir "$out/bf16"
check throughput python benchmarks/bench.py --only throughput --device cuda --out "$out/throughput.json" --workdir "$out/bench"
kill_and_resume() {  # an uninterrupted run against one killed with SIGKILL after step 60, then resumed
  local args=("${train[@]}" --max_epochs 3 --checkpoint_every_n_steps 20)
  "${args[@]}" --runs_dir "$out/whole" || return 1
  "${args[@]}" --runs_dir "$out/killed" & local pid=$!
  while kill -0 $pid 2>/dev/null && ! python -c "import glob, sys, torch; p = glob.glob('$out/killed/*/checkpoints/last.ckpt');
sys.exit(not p or torch.load(p[0], weights_only=True)['global_step'] < 60)" 2>/dev/null; do sleep 0.2; done
  kill -9 $pid; wait $pid
  "${args[@]}" --runs_dir "$out/killed" --ckpt_path last || return 1
  python -c "import glob, sys, torch; W = [torch.load(glob.glob(f'$out/{r}/*/checkpoints/last.ckpt')[0],
weights_only=True)['state_dict']['W'] for r in ('whole', 'killed')]; print('bitwise equal:', torch.equal(*W)); sys.exit(not torch.equal(*W))"
}
check kill-resume kill_and_resume
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  check ddp-2 python train.py --config ddp --accelerator gpu --quiet --logger csv --pictures false --data.path "$names" \
    --max_epochs 2 --runs_dir "$out/ddp"
fi
nvidia-smi -L
printf '%s\n' "${table[@]}"
! printf '%s\n' "${table[@]}" | grep -q FAILED
