#!/usr/bin/env bash
# Every zoo model, end to end: export/import -> sanitize -> fp16 + int8 QDQ -> validate (anywhere), then
# TensorRT engines through the engine cache (on the robot, where TensorRT is installed).
#
#   tools/convert_all_models.sh DEPLOY_DIR [MODEL ...]
# env: EDGE_INFER (the edge-infer command), PYTHON (its python), TARGET (jetpack6), PRECISION (fp16), MODELS_DIR
# Re-runs are cached: unchanged steps are skipped (manifest.json in DEPLOY_DIR says what was done).
set -euo pipefail
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then usage; exit $([[ $# -lt 1 ]] && echo 2 || echo 0); fi
EI="${EDGE_INFER:-edge-infer}"
deploy="$1"; shift
md=(); [[ -n "${MODELS_DIR:-}" ]] && md=(--models-dir "$MODELS_DIR")
echo "== 1/2 convert: $deploy (target ${TARGET:-jetpack6})"
"$EI" convert-all "$deploy" "$@" --target "${TARGET:-jetpack6}" "${md[@]}"
echo "== 2/2 TensorRT engines (${PRECISION:-fp16})"
trt=$("${PYTHON:-python3}" -c "from edge_infer.backends import resolve_auto; k, r = resolve_auto(); print(k if k == 'tensorrt' else r)" 2>&1 || true)
if [[ "$trt" == "tensorrt" ]]; then
  if [[ $# -gt 0 ]]; then for m in "$@"; do "$EI" build "$m" --precision "${PRECISION:-fp16}" "${md[@]}"; done
  else "$EI" build --all --precision "${PRECISION:-fp16}" "${md[@]}"; fi
else
  echo "no TensorRT engines here ($trt): they are built on the robot (run this script there, or"
  echo "  $EI build --all --precision ${PRECISION:-fp16}); skipped"
fi
