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
# The teacher first (its training resumes across commands). Then the
# seeds, one after another: for each, the jobs that start from the teacher
# alone (no-stage1, pixel) beside stage 1, and as soon as stage 1 is done,
# the jobs that start from it, all together (OSV and k = 1 start together,
# so that k = 1 gets OSV's wall time on the same loaded machine). Then the
# table. Every job runs in a process of its own: stage 1 and the pixel
# ablation leave the GPU idle most of the time, and the recorded stage-2
# jobs share it. (A process holds about 6.3 GiB of GPU memory: one seed's
# seven fit; the 21 of three seeds at once ran out of the H200's memory.)
# A job that a command stops keeps its progress, and the next command
# resumes it; its log grows across commands.
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

job() { # job SEED NAME: one job in its own process, within the time left
  timeout --signal=INT "$(( $(left) - 20 ))" $toy student "${common[@]}" -seed "$1" -jobs "$2" \
    >> "$work/seed-$1-$2.log" 2>&1
}
waitall() { local rc=0 p; for p in "$@"; do wait "$p" || rc=1; done; return $rc; }
chain() { # chain SEED: stage 1, then the jobs that start from it
  job "$1" stage1 || return 1
  local pids=() j
  for j in osv k1 no-adv real-data real-low; do job "$1" "$j" & pids+=($!); done
  waitall "${pids[@]}"
}
for s in ${seeds//,/ }; do
  job "$s" no-stage1 & a=$!
  job "$s" pixel & b=$!
  chain "$s" & c=$!
  waitall $a $b $c || { echo "seed $s: some jobs are unfinished: run again"; exit 1; }
done
$toy table "${common[@]}" -out "$out"
