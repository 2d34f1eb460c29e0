#!/bin/bash
# The results table on one GPU, in commands that each stop within a time
# budget and resume where the last one stopped. Run it again until it
# prints the table:
#
#   bash examples/toy/table.sh WORK OUT [BUDGET_SECONDS]
#
# (SEEDS, DEVICE, TEACHER_FLAGS, EXTRA and TOY, a built binary, change the
# defaults: seeds 1,2,3 on cuda, and the committed teacher in
# examples/toy/teacher as it is, evaluated but not trained further;
# TEACHER_FLAGS= trains one from random weights instead.)
#
# Phase by phase: the teacher (its training resumes across commands),
# then each seed's stage 1 and the jobs that start from the teacher alone,
# then the jobs that start from stage 1 (OSV and k = 1 start together, so
# that k = 1 gets OSV's wall time on the same loaded machine), then the
# table. Every job runs in a process of its own; those of one phase run at
# once: stage 1 and the pixel ablation leave the GPU idle most of the
# time, and the recorded stage-2 jobs share it.
set -u
work=${1:?work folder}
out=${2:?output folder}
budget=${3:-540}
seeds=${SEEDS:-1,2,3}
start=$SECONDS
mkdir -p "$work" "$out"
toy=${TOY:-}
if [ -z "$toy" ]; then # build once for every process
  toy="$work/toy"
  go build -tags "${GOTAGS:-cuda}" -o "$toy" ./examples/toy || exit 1
fi
# EXTRA: flags for every command (say -quick for a smoke test)
common=(-device "${DEVICE:-cuda}" -work "$work" -seeds "$seeds" ${EXTRA:-})
left() { echo $(( budget - (SECONDS - start) )); }

if [ ! -f "$work/teacher.json" ]; then
  t=$(( $(left) - 60 ))
  [ "$t" -gt 30 ] || { echo "no time left for the teacher"; exit 1; }
  $toy teacher "${common[@]}" -teacher-budget "${t}s" ${TEACHER_FLAGS--teacher-init examples/toy/teacher -teacher-steps 0} || exit 1
fi

phase() { # phase JOBS: every seed's JOBS, in parallel, within the time left
  local pids=()
  for s in ${seeds//,/ }; do
    for j in $1; do
      timeout --signal=INT "$(( $(left) - 20 ))" $toy student "${common[@]}" -seed "$s" -jobs "$j" \
        > "$work/seed-$s-$j.log" 2>&1 &
      pids+=($!)
    done
  done
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}
phase "stage1 no-stage1 pixel" || { echo "stage 1 phase unfinished: run again"; exit 1; }
phase "osv k1 no-adv real-data real-low" || { echo "stage 2 phase unfinished: run again"; exit 1; }
$toy table "${common[@]}" -out "$out"
