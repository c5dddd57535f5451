#!/usr/bin/env bash
# A real third-party ONNX model with symbolic spatial dims, run as a model file on ort and openvino:
# PP-OCRv4's text detector, shipped inside the rapidocr-onnxruntime wheel (input x [?, 3, ?, ?]).
# Needs the network once (pip download); nothing is installed. Prints the table (FLOPs, latency, parity).
#   benchmarks/third_party_onnx.sh [HxW]    (default 640x640)
set -euo pipefail
size="${1:-640x640}"
work="${TMPDIR:-/tmp}/benchbench-rapidocr"
mkdir -p "$work"
if [ ! -f "$work/models/ch_PP-OCRv4_det_infer.onnx" ]; then
    pip download --no-deps --dest "$work" "rapidocr-onnxruntime==1.4.4"
    (cd "$work" && python -m zipfile -e rapidocr_onnxruntime-1.4.4-py3-none-any.whl unpacked \
        && mkdir -p models && cp unpacked/rapidocr_onnxruntime/models/*.onnx models/)
fi
benchbench run --model "$work/models/ch_PP-OCRv4_det_infer.onnx" --backend ort,openvino \
    --input-shape "x=1x3x${size}" --out "$work/runs"
