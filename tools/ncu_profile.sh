#!/usr/bin/env bash
# ncu_profile.sh — Nsight Compute on tools/ncu_workload.py: the first launch of each flashplus
# kernel (forward, dK/dV, dQ, combine), with the sections that explain a slow kernel (speed of
# light, occupancy, warp stalls, memory tables, instruction mix, per-SASS-line stall counters).
# Clocks are left alone (--clock-control none, as METHOD.md asks).
# Usage (device, repository root): FLASHPLUS_LIBRARY=/path/libflashplus.so tools/ncu_profile.sh
# Writes $OUT/ncu.ncu-rep, $OUT/ncu_details.txt and $OUT/ncu_source_<kernel>.csv.
set -uo pipefail
OUT="${OUT:-/tmp/ncu-out}"
mkdir -p "$OUT"
KERNELS="${NCU_KERNELS:-regex:fwd_kernel_sm80|bwd_dkdv_kernel_sm80|bwd_dq_kernel_sm80|combine_kernel}"
sections=()
for s in SpeedOfLight LaunchStats Occupancy WarpStateStats ComputeWorkloadAnalysis MemoryWorkloadAnalysis \
         MemoryWorkloadAnalysis_Tables MemoryWorkloadAnalysis_Chart InstructionStats SchedulerStats SourceCounters; do
  sections+=(--section "$s")
done
PYTHONPATH=python ncu --clock-control none --target-processes all -k "$KERNELS" -c "${NCU_COUNT:-8}" \
  "${sections[@]}" -f -o "$OUT/ncu" python3 tools/ncu_workload.py >"$OUT/ncu_run.log" 2>&1
echo "ncu rc $?"; tail -5 "$OUT/ncu_run.log"
ncu -i "$OUT/ncu.ncu-rep" --page details >"$OUT/ncu_details.txt" 2>&1
# Per-SASS-line counters, gzipped (the raw CSVs are ~20 MB, over what comes back from the device);
# the report itself is removed for the same reason.
for k in fwd_kernel_sm80 bwd_dkdv_kernel_sm80 bwd_dq_kernel_sm80; do
  ncu -i "$OUT/ncu.ncu-rep" -k "regex:$k" -c 1 --page source --print-source sass --csv \
    2>&1 | gzip -9 >"$OUT/ncu_source_$k.csv.gz"
done
rm -f "$OUT/ncu.ncu-rep"
ls -la "$OUT"
