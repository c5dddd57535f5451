"""Int8 deploy forms: a deploy form's float export quantized by each runtime's own post-training static quantization
inside the build (``benchbench.build.export``), cached like any artifact.

- ort: ONNX Runtime's ``quantize_static`` on the float ONNX, QDQ format; weights int8 symmetric per output channel,
  activations uint8 asymmetric per tensor (on x86, ORT turns DQ → Conv → Q into QLinearConv with u8s8 VNNI kernels
  for every conv; int8 activations leave about half the convs and every Add in float between Q/DQ pairs), MinMax
  calibration, no reduced range (VNNI has no u8s8 saturation).
- openvino: NNCF's ``nncf.quantize`` on the model read from the float ONNX, an IR with FakeQuantize; the
  ``performance`` preset (symmetric weights per channel and activations), CPU target, every calibration input used
  once (``subset_size``), saved in f32.
- tflite: ai-edge-quantizer's full-integer ``static_wi8_ai8`` recipe on the float ``.tflite``, float I/O.

Calibration, the same for every backend: ``CALIBRATION_COUNT`` seeded standard-normal inputs of the build's shape,
drawn from a stream independent of the benchmark input (``numpy.random.default_rng([seed, CALIBRATION_TAG])``), so
the benchmark input, on which fidelity is checked, is held out.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchbench.core.env import package_versions

__all__ = ["CALIBRATION_COUNT", "CALIBRATION_TAG", "INT8_SETTINGS", "NNCF_SETTINGS", "QUANTIZER_PACKAGES",
           "TFLITE_SETTINGS", "calibration_inputs", "quantize_onnx", "quantize_openvino", "quantize_tflite",
           "qdq_counts"]

# 32 inputs: 8 left some zoo models several dB short of their 32-input SQNR; 128 added nothing measurable on
# random-normal inputs and took four times as long (a sweep of the zoo, 2026-12-05).
CALIBRATION_COUNT = 32
CALIBRATION_TAG = 0xCA1B  # the calibration stream: default_rng([seed, CALIBRATION_TAG]), never the benchmark input
INT8_SETTINGS = {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                 "weights": "int8 symmetric per-channel", "activations": "uint8 asymmetric per-tensor",
                 "calibration": "MinMax", "calibration_count": CALIBRATION_COUNT, "reduce_range": False}
NNCF_SETTINGS = {"tool": "nncf.quantize", "format": "OpenVINO IR (FakeQuantize)", "preset": "performance",
                 "weights": "int8 symmetric per-channel",
                 "activations": "8-bit symmetric per-tensor (u8 after ReLU, else i8)",
                 "target_device": "CPU", "fast_bias_correction": True, "calibration_count": CALIBRATION_COUNT}
# Full-integer int8 LiteRT: graph input and output stay float (one QUANTIZE in, one DEQUANTIZE out), so the int8
# model keeps the float one's signature and the tflite runner feeds it the same float input.
TFLITE_SETTINGS = {"tool": "ai_edge_quantizer static_wi8_ai8", "format": "full-integer TFLite (float I/O)",
                   "weights": "int8 symmetric per-channel", "activations": "int8 asymmetric per-tensor (min/max)",
                   "calibration_count": CALIBRATION_COUNT}
# Their versions decide the int8 artifacts' bytes: part of an int8 build's key.
QUANTIZER_PACKAGES = ("onnxruntime", "nncf", "openvino", "ai-edge-quantizer", "ai-edge-litert")
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def calibration_inputs(shape, seed: int, count: int = CALIBRATION_COUNT) -> list:
    """``count`` seeded standard-normal float32 arrays of ``shape`` (batch included)."""
    import numpy as np

    rng = np.random.default_rng([seed, CALIBRATION_TAG])
    return [rng.standard_normal(tuple(shape), dtype=np.float32) for _ in range(count)]


def qdq_counts(onnx_path: str | Path) -> dict:
    """QuantizeLinear and DequantizeLinear nodes in an ONNX graph, and every other node, counted apart."""
    import onnx

    nodes = onnx.load(str(onnx_path), load_external_data=False).graph.node
    qdq = sum(n.op_type in _QDQ_OPS for n in nodes)
    return {"qdq_nodes": qdq, "other_nodes": len(nodes) - qdq}


def quantize_onnx(float_onnx: str | Path, out_path: str | Path, calibration: list) -> dict:
    """Quantize ``float_onnx`` (one float input) into ``out_path`` with ``calibration`` as its inputs; what was
    done, as a JSON-able record. A quantizer's refusal raises (the build records it as unsupported)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    graph = onnx.load(str(float_onnx), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ValueError(f"int8 quantization takes a model with one input ({len(inputs)} here)")

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calibration)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {inputs[0]: x}

        def rewind(self):
            self._it = iter(calibration)

    t0 = time.perf_counter()
    quantize_static(str(float_onnx), str(out_path), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return {**INT8_SETTINGS, "calibration_count": len(calibration), "onnxruntime": onnxruntime.__version__,
            "quantize_s": round(time.perf_counter() - t0, 3), **qdq_counts(out_path)}


def quantize_openvino(float_onnx: str | Path, out_xml: str | Path, calibration: list) -> dict:
    """NNCF's post-training quantization of the OpenVINO model read from ``float_onnx``, saved as an IR at
    ``out_xml`` (its ``.bin`` beside it); what was done, as a JSON-able record. The IR keeps FakeQuantize nodes,
    which the CPU plugin folds into u8/i8 kernels when it compiles. A quantizer's refusal raises."""
    import nncf
    import openvino as ov

    t0 = time.perf_counter()
    model = ov.Core().read_model(str(float_onnx))
    if len(model.inputs) != 1:
        raise ValueError(f"int8 quantization takes a model with one input ({len(model.inputs)} here)")
    quantized = nncf.quantize(model, nncf.Dataset(list(calibration)), preset=nncf.QuantizationPreset.PERFORMANCE,
                              target_device=nncf.TargetDevice.CPU, subset_size=len(calibration),
                              fast_bias_correction=NNCF_SETTINGS["fast_bias_correction"])
    # f32, not openvino's default f16 compression: the float constants left stay as the float model has them
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    types = [op.get_type_name() for op in quantized.get_ops()]
    fq = types.count("FakeQuantize")
    skip = fq + sum(t in ("Constant", "Parameter", "Result") for t in types)
    return {**NNCF_SETTINGS, "calibration_count": len(calibration), "nncf": nncf.__version__,
            "openvino": ov.get_version().split("-")[0], "quantize_s": round(time.perf_counter() - t0, 3),
            "qdq_nodes": fq, "other_nodes": len(types) - skip}


def quantize_tflite(float_tflite: str | Path, out_path: str | Path, calibration: list) -> dict:
    """ai-edge-quantizer's full-integer recipe (``static_wi8_ai8``) on the build's float ``.tflite``, calibrated
    by running it in the LiteRT interpreter on ``calibration``; written to ``out_path``; what was done, as a
    JSON-able record. A quantizer's refusal raises."""
    from ai_edge_litert import interpreter as tfl
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe

    t0 = time.perf_counter()
    signatures = tfl.Interpreter(model_path=str(float_tflite)).get_signature_list()
    key = next(iter(signatures))
    names = signatures[key]["inputs"]
    if len(names) != 1:
        raise ValueError(f"int8 quantization takes a model with one input ({len(names)} here)")
    q = quantizer.Quantizer(str(float_tflite))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):  # float I/O (TFLITE_SETTINGS)
        q.update_quantization_recipe(regex=".*", operation_name=op,
                                     algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    ranges = q.calibrate({key: [{names[0]: x} for x in calibration]}, num_threads=1)
    try:
        q.quantize(ranges, enable_progress_report=False).export_model(str(out_path), overwrite=True)
    except ValueError as exc:
        if "Failed to get quantization parameters" not in str(exc):
            raise
        # a tensor the calibration recorded no range for (seen on VanillaNet-6..13, RepMLPNet and a PSConv model)
        tensor = str(exc).split("tensor:", 1)[-1].split(";", 1)[0].strip()  # the module path that names the layer
        raise ValueError(f"ai-edge-quantizer calibrated no range for tensor {tensor!r}, so no full-integer model; "
                         "the float forms are measured, and ort and openvino have int8 forms of it") from None
    ops = [d["op_name"] for d in tfl.Interpreter(model_path=str(out_path))._get_ops_details()]
    qdq = sum(op in ("QUANTIZE", "DEQUANTIZE") for op in ops)
    return {**TFLITE_SETTINGS, "calibration_count": len(calibration), "ai-edge-quantizer":
            package_versions(("ai-edge-quantizer",)).get("ai-edge-quantizer"),
            "quantize_s": round(time.perf_counter() - t0, 3), "qdq_nodes": qdq, "other_nodes": len(ops) - qdq}
