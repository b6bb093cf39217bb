#!/usr/bin/env bash
# Benchmark the zoo models on every runtime present (PyTorch, ONNX Runtime CPU/CUDA/TensorRT EP, TensorRT):
# writes OUT_DIR/benchmark.json and OUT_DIR/benchmark.png and prints the table.
#
#   tools/benchmark_edge.sh [OUT_DIR] [extra `edge-infer bench model` options, e.g. --batch 1,8 --runs 50]
# (env: EDGE_INFER=path/to/edge-infer)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
EI="${EDGE_INFER:-edge-infer}"
out="${1:-bench_out}"; [[ $# -gt 0 ]] && shift
"$EI" bench model --out "$out" "$@"
echo "benchmark: $out/benchmark.json  plot: $out/benchmark.png"
