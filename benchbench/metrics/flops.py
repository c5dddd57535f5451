"""Model-level work counts: parameters, FLOPs/MACs (conv, linear, matmul) and element-ops.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts only convolutions and matrix
products (``convolution``, ``mm``, ``addmm``, ``bmm``, ``baddbmm``, attention kernels) and counts one
multiply-accumulate as 2 FLOPs: FLOPs = 2 x MACs exactly. Bias additions inside those ops are not counted.

Everything else that computes (activations, arithmetic, normalization, pooling, reductions) is counted
separately as **element-ops**, by a dispatch mode that watches the same forward pass:

* elementwise, activation and normalization ops: one element-op per *output* element (a BN or LayerNorm
  output element is one element-op, however many instructions the kernel spends on it);
* pooling with an explicit window (``max_pool2d``, ``avg_pool2d``): output elements x window area;
* adaptive pooling and reductions (``mean``, ``sum``, ``amax``, ...): one per *input* element;
* ops already in the FLOP count, data movement (``cat``, ``pad``, copies) and views: zero.

Any other aten op that runs is listed under ``element_ops_unknown`` with its call count, so a blind spot
shows up in the result instead of silently counting as zero. Counts are per forward pass of the given
input, so they include the batch. Counting works on ``meta`` tensors (shapes only, no arithmetic).
"""

from __future__ import annotations

import math

__all__ = ["FLOPS_CONVENTION", "ELEMENT_OPS_CONVENTION", "count_model", "ElementOpCounter"]

FLOPS_CONVENTION = "FlopCounterMode: conv/linear/matmul only (no bias adds), FLOPs = 2 x MACs, per batch"
ELEMENT_OPS_CONVENTION = ("output elements of elementwise/activation/normalization ops, + output elements x "
                          "window of pooling, + input elements of reductions and adaptive pooling; per batch")

# aten overload packets by how their element-ops are counted. Names are ``func.overloadpacket.__name__``;
# in-place variants (``relu_``) share the rule of their out-of-place op.
_ELEMENTWISE = {
    # arithmetic
    "add", "sub", "rsub", "mul", "div", "neg", "abs", "pow", "sqrt", "rsqrt", "reciprocal", "exp", "log",
    "log1p", "expm1", "erf", "square", "maximum", "minimum", "where", "addcmul", "addcdiv", "lerp", "sign",
    "floor", "ceil", "round", "trunc", "fmod", "remainder", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_not", "logical_and", "logical_or", "bitwise_and", "bitwise_or", "masked_fill",
    # activations
    "relu", "relu6", "leaky_relu", "hardtanh", "sigmoid", "tanh", "silu", "gelu", "hardswish", "hardsigmoid",
    "mish", "elu", "selu", "celu", "softplus", "softsign", "prelu", "_prelu_kernel", "threshold", "clamp",
    "clamp_min", "clamp_max", "glu", "log_sigmoid_forward", "sin", "cos",
    # normalizing an axis: each output element is one op (the reduction over the axis is not counted apart)
    "_softmax", "_log_softmax", "softmax", "log_softmax",
    # resampling produces each output element from a few inputs
    "upsample_nearest2d", "upsample_bilinear2d", "_upsample_nearest_exact2d", "upsample_bicubic2d",
    "grid_sampler_2d",
}
_NORMALIZATION = {
    "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit_functional", "batch_norm", "native_layer_norm", "native_group_norm",
    "_fused_rms_norm", "instance_norm",
}
_POOLING_WINDOW = {"max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "max_pool1d", "avg_pool1d",
                   "max_pool3d", "max_pool3d_with_indices", "avg_pool3d"}
_REDUCTION = {  # one op per input element
    "mean", "sum", "amax", "amin", "max", "min", "prod", "var", "std", "var_mean", "std_mean", "norm",
    "linalg_vector_norm", "logsumexp", "argmax", "argmin", "_adaptive_avg_pool2d", "adaptive_avg_pool2d",
    "adaptive_max_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool3d", "cumsum",
}
# Counted by FlopCounterMode, or moving data without computing, or allocating: zero element-ops.
_NOT_ELEMENT_OPS = {
    "convolution", "mm", "addmm", "bmm", "baddbmm", "matmul", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_flash_attention_for_cpu", "convolution_backward", "_convolution",
    "cat", "stack", "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "clone", "copy", "copy_",
    "_to_copy", "contiguous", "index", "index_select", "gather", "scatter", "roll", "flip", "repeat", "tile",
    "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "fill", "fill_", "zero_",
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "arange", "scalar_tensor", "lift_fresh", "lift_fresh_copy", "_local_scalar_dense", "item", "new_empty",
    "new_zeros", "new_ones", "new_full", "bernoulli", "dropout", "native_dropout", "split_with_sizes_copy",
    # views and metadata: no data touched
    "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "detach", "alias", "unsqueeze",
    "squeeze", "flatten", "as_strided", "slice", "select", "split", "chunk", "split_with_sizes", "unbind",
    "_reshape_alias", "unfold", "narrow", "view_as", "expand_as", "sym_size", "sym_stride", "sym_numel",
    "sym_storage_offset", "size", "stride", "dim", "is_same_size", "_has_compatible_shallow_copy_type",
}


def _numel(x) -> int:
    import torch

    if isinstance(x, torch.Tensor):
        return x.numel()
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], torch.Tensor):
        return x[0].numel()  # (out, saved_mean, saved_invstd, ...): the first is the result
    return 0


def _window(args, kwargs) -> int:
    """Window area of a pooling call: ``kernel_size`` is the op's second argument."""
    kernel = kwargs.get("kernel_size", args[1] if len(args) > 1 else 1)
    kernel = [kernel] if isinstance(kernel, int) else list(kernel)
    dims = args[0].dim() - 2 if hasattr(args[0], "dim") else len(kernel)
    if len(kernel) == 1:
        kernel = kernel * max(dims, 1)
    return math.prod(int(k) for k in kernel)


def _make_counter():
    from torch.utils._python_dispatch import TorchDispatchMode

    class _ElementOpCounter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.by_category = {"elementwise": 0, "normalization": 0, "pooling": 0, "reduction": 0}
            self.unknown: dict[str, int] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = func.overloadpacket.__name__
            base = name[:-1] if name.endswith("_") and not name.startswith("_") else name  # relu_ → relu
            if base in _NOT_ELEMENT_OPS or name in _NOT_ELEMENT_OPS:
                pass
            elif base in _ELEMENTWISE:
                self.by_category["elementwise"] += _numel(out)
            elif base in _NORMALIZATION:
                self.by_category["normalization"] += _numel(out)
            elif base in _POOLING_WINDOW:
                self.by_category["pooling"] += _numel(out) * _window(args, kwargs)
            elif base in _REDUCTION and func._overloadname != "other":  # max.other is elementwise
                self.by_category["reduction"] += _numel(args[0])
            elif base in _REDUCTION:
                self.by_category["elementwise"] += _numel(out)
            else:
                self.unknown[name] = self.unknown.get(name, 0) + 1
            return out

    return _ElementOpCounter()


class ElementOpCounter:
    """Context manager counting element-ops of the aten ops run inside it (see the module docstring)."""

    def __init__(self):
        self._mode = _make_counter()

    def __enter__(self) -> ElementOpCounter:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)

    @property
    def total(self) -> int:
        return sum(self._mode.by_category.values())

    @property
    def by_category(self) -> dict[str, int]:
        return dict(self._mode.by_category)

    @property
    def unknown(self) -> dict[str, int]:
        return dict(sorted(self._mode.unknown.items()))


def count_model(model, x) -> dict:
    """Params, FLOPs, MACs and element-ops of one forward pass of ``model`` on ``x`` (no gradients).

    Works on real and ``meta`` tensors. Returns a flat dict of counts plus the conventions used.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    # The element counter sits inside the FLOP counter: both see every aten op of the same pass.
    with FlopCounterMode(display=False) as flop_counter, ElementOpCounter() as elem_counter, torch.no_grad():
        model(x)
    flops = int(flop_counter.get_total_flops())
    return {
        "params": int(sum(p.numel() for p in model.parameters())),
        "flops": flops,
        "macs": flops // 2,
        "element_ops": elem_counter.total,
        "element_ops_by_category": elem_counter.by_category,
        "element_ops_unknown": elem_counter.unknown,
        "flops_convention": FLOPS_CONVENTION,
        "element_ops_convention": ELEMENT_OPS_CONVENTION,
    }


# Views and metadata ops launch no kernel: they are left out of the executed-op count.
_NO_KERNEL = {"view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "detach", "alias",
              "unsqueeze", "squeeze", "flatten", "as_strided", "slice", "select", "split", "chunk",
              "split_with_sizes", "unbind", "_reshape_alias"}


def count_dispatched_ops(model, x) -> dict:
    """aten ops dispatched by one forward of ``model`` on ``x``: what PyTorch eager executes (it has no
    fusion), without views. ``{"count", "by_type", "source"}``."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: dict[str, int] = {}

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            counts[name] = counts.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    with torch.inference_mode(), _Count():
        model(x)
    kernels = {k: v for k, v in counts.items() if k not in _NO_KERNEL}
    return {"count": sum(kernels.values()), "by_type": dict(sorted(kernels.items())), "source": "aten dispatch"}

