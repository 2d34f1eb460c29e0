#!/bin/bash
# The results table on one GPU, in commands that each stop within a time
# budget and resume where the last one stopped. Run it again until it
# prints the table:
#
#   bash examples/toy/table.sh WORK OUT [BUDGET_SECONDS]
#
# (SEEDS, DEVICE, TEACHER_FLAGS, JOBS, WATCH, EXTRA and TOY, a built binary,
# change the defaults: seeds 1,2,3 on cuda, every job, -watch 50 (WATCH=0:
# no validation readings), and the committed
# teacher in examples/toy/teacher as it is, evaluated but not trained
# further; TEACHER_FLAGS= trains one from random weights instead. JOBS
# names the jobs to run, comma-separated; stage1 and osv are always run.)
#
# The teacher first (its training resumes across commands). Then, in four
# phases over every seed at once, most needed first: stage 1 of every
# seed; then OSV and k = 1 of every seed, started together so that k = 1
# gets OSV's wall time on the same loaded machine; then the paper's other
# ablations of every seed; then the discriminator's weight and rate
# (adv-0.1, adv-0.3, disc-lr-0.001; adv-0.2, the default's weight, is
# not run unless JOBS names it). Then the table. Every job runs in a process
# of its own, because the recorded steps of one process leave the GPU
# partly idle; stage-2 wall times are therefore those of a shared GPU, and
# the jobs of one phase share it alike. (A process holds about 6.3 GiB of
# GPU memory, and 21 processes at once ran out of the H200's memory; with
# three seeds the largest phase is 15 processes, about 95 GiB by that
# figure.) A job that a command stops keeps its progress,
# and the next command resumes it; its log grows across commands.
# Every finished job leaves its student's adapters in WORK/seed-N/JOB-lora,
# for toy demo -lora, and, with -watch, those of its lowest validation
# reading in WORK/seed-N/JOB-best-lora, with rows of their own.
set -u
work=${1:?work folder}
out=${2:?output folder}
budget=${3:-540}
seeds=${SEEDS:-1,2,3}
jobs=,${JOBS:-stage1,osv,k1,no-stage1,no-adv,real-data,real-low,pixel,adv-0.1,adv-0.3,disc-lr-0.001},
start=$SECONDS
mkdir -p "$work" "$out"
toy=${TOY:-}
if [ -z "$toy" ]; then # build once for every process
  toy="$work/toy"
  go build -tags "${GOTAGS:-cuda}" -o "$toy" ./examples/toy || exit 1
fi
# EXTRA: flags for every command (say -quick for a smoke test, with
# SEEDS=1: -quick keeps only the first seed)
common=(-device "${DEVICE:-cuda}" -work "$work" -seeds "$seeds" -watch "${WATCH:-50}" ${EXTRA:-})
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
phase() { # phase NAME...: the named jobs of every seed at once, those JOBS selects
  local pids=() s j rc=0 p
  for s in ${seeds//,/ }; do
    for j in "$@"; do
      case $jobs in *,$j,*) ;; *) [ "$j" = stage1 ] || [ "$j" = osv ] || continue ;; esac
      job "$s" "$j" & pids+=($!)
    done
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ $rc = 0 ] || { echo "$*: some jobs are unfinished: run again"; exit 1; }
}
phase stage1
phase osv k1
phase no-adv real-data real-low no-stage1 pixel
phase adv-0.1 adv-0.2 adv-0.3 disc-lr-0.001 # adv-0.2 only when JOBS names it: it is the default's weight
$toy table "${common[@]}" -out "$out"
