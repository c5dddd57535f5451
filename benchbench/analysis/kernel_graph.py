"""A model's graph cut into the kernels a backend runs: ONNX nodes mapped to kernel ops, then fused by rules.

The predictor (``benchbench.analysis.predictor``) sums per-kernel predictions over this list. A kernel is a dict
in the kernel sweep's vocabulary (``benchbench.core.kernelpoints``): ``op``, ``kind`` (the regressor class),
``cin``, ``cout``, ``size`` (input H = W, or 1), ``out`` (output H), ``k``, ``stride``, ``groups``, ``rows``
(gemm; a convolution's batch), ``in_elems``, ``out_elems``, ``post`` (a fused chain) and ``nodes`` (the ONNX nodes it covers).
:func:`point_kernel` gives a sweep point the same dict, so one feature function serves both.

Steps (:func:`graph_kernels`):

1. shapes by ``onnx.shape_inference``; only nodes on the data path count (constants and shape arithmetic do not
   run per inference on any backend here);
2. each node becomes a kernel op (``_OP_MAP``; convolutions split by groups into conv, dwconv, gconv; a binary
   op with a broadcast operand is ``mulbc``); the exporter's multi-node activations are recognised as one
   (``Div → Erf → Add → Mul → Mul`` is gelu, ``x · sigmoid(x)`` is silu);
3. fusion (:func:`fuse`): a head (conv, dwconv, gconv, gemm, add) absorbs the chain that follows it (bn, relu,
   bnrelu, sigmoid, hswish, gelu, add, addrelu, clip) when the backend's rules say it fuses (``analysis.fusion``);
4. the caller adds the layout reorders the backend inserts (:func:`layout_kernel`; ``cli.predict``), which only
   the backend's own compiled graph shows.

The graph is the build's ONNX export, in which the exporter has already folded each BatchNorm that follows a
convolution. PyTorch eager runs those batch norms; for it the caller adds them back (``extra_bn``).
"""

from __future__ import annotations

import math

from benchbench.core.kernelpoints import OP_CLASS, KernelPoint

__all__ = ["HEADS", "LAYOUT", "graph_kernels", "fuse", "kernel_macs", "kernel_weights", "layout_kernel", "point_kernel",
           "onnx_kernels"]

HEADS = ("conv", "dwconv", "gconv", "gemm", "add")
_UNARY = {"Relu": "relu", "LeakyRelu": "relu", "Clip": "clip", "PRelu": "relu", "Sigmoid": "sigmoid",
          "HardSigmoid": "sigmoid", "Tanh": "sigmoid", "Exp": "sigmoid", "Log": "sigmoid", "Sqrt": "sigmoid",
          "Reciprocal": "sigmoid", "Pow": "sigmoid", "Neg": "relu", "Abs": "relu", "Softplus": "sigmoid",
          "HardSwish": "hswish", "Erf": "gelu", "Gelu": "gelu", "BatchNormalization": "bn", "Softmax": "softmax",
          "LayerNormalization": "layernorm", "InstanceNormalization": "layernorm", "Cast": "relu"}
_BINARY = {"Add": "add", "Sub": "add", "Mul": "mul", "Div": "mul", "Max": "add", "Min": "add", "Where": "add"}
_POOL = {"MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "gap", "GlobalMaxPool": "gap",
         "ReduceMean": "gap", "ReduceSum": "gap", "ReduceMax": "gap"}
_MOVE = {"Concat": "concat", "Split": "split", "Slice": "slice", "Gather": "slice", "Transpose": "transpose",
         "Pad": "concat", "Resize": "concat", "Tile": "concat", "Expand": "concat", "DepthToSpace": "transpose",
         "SpaceToDepth": "transpose", "ScatterND": "concat"}
_VIEW = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Shape", "Constant", "CastLike",
         "ConstantOfShape", "Range", "Size"}
_GEMM = {"Gemm", "MatMul", "Einsum", "MatMulInteger", "QLinearMatMul"}


def _elems(shape) -> int:
    return math.prod(shape) if shape else 1


def _kernel(op: str, cin: int, cout: int, size: int, out: int, in_elems: int, out_elems: int, k: int = 1,
            stride: int = 1, groups: int = 1, rows: int = 1, nodes=()) -> dict:
    return {"op": op, "kind": OP_CLASS[op], "cin": int(cin), "cout": int(cout), "size": int(size), "out": int(out),
            "k": int(k), "stride": int(stride), "groups": int(groups), "rows": int(rows),
            "in_elems": int(in_elems), "out_elems": int(out_elems), "post": "", "nodes": list(nodes)}


LAYOUT = "reorder"  # the kind and op of a layout reorder the backend inserts (``layout_kernel``)


def layout_kernel(elements: int) -> dict:
    """A layout reorder the backend inserts between kernels (ONNX Runtime's NCHWc ``ReorderInput`` and
    ``ReorderOutput``, a TRANSPOSE LiteRT's converter leaves between NHWC and NCHW), moving ``elements``: a kernel
    the graph does not hold, priced per element by the predictor (the boundary that one-convolution nets measure,
    ``analysis.predictor.chain_fit``)."""
    e = int(elements)
    return {"op": LAYOUT, "kind": LAYOUT, "cin": 1, "cout": 1, "size": 1, "out": 1, "k": 1, "stride": 1, "groups": 1,
            "rows": 1, "in_elems": e, "out_elems": e, "post": "", "nodes": ["(layout reorder)"]}


def kernel_weights(k) -> int:
    """A convolution's or matrix product's weight elements (0 for other kernels)."""
    if k["kind"] in ("conv", "dwconv", "gconv"):
        return k["cout"] * (k["cin"] // max(1, k["groups"])) * k["k"] ** 2
    return k["cin"] * k["cout"] if k["kind"] == "gemm" else 0


def kernel_macs(k) -> int:
    """A kernel's multiply-accumulates: a convolution's output elements (``rows`` is its batch) times its weight's
    fan-in, a matrix product's rows x cin x cout; 0 for other kernels."""
    if k["kind"] in ("conv", "dwconv", "gconv"):
        return k["rows"] * k["out"] * k["out"] * kernel_weights(k)
    return k["rows"] * k["cin"] * k["cout"] if k["kind"] == "gemm" else 0


def point_kernel(p: KernelPoint) -> dict:
    """A sweep point as a kernel dict (the same features a graph's kernel has)."""
    if p.op == "gemm":
        return _kernel("gemm", p.cin, p.cout, 1, 1, p.rows * p.cin, p.rows * p.cout, rows=p.rows)
    out = -(-p.size // p.stride) if p.kind in ("conv", "dwconv", "gconv") or p.op in ("maxpool", "avgpool") else \
        1 if p.op == "gap" else p.size
    return _kernel(p.op, p.cin, p.cout, p.size, out, p.cin * p.size * p.size, p.cout * out * out, p.k, p.stride,
                   p.groups)


def _channels_size(shape) -> tuple[int, int]:
    """(channels, H) of an activation: NCHW when 4-D, else (last dim, 1)."""
    if shape and len(shape) == 4:
        return shape[1], shape[2]
    if shape and len(shape) >= 2:
        return shape[-1], max(1, int(math.isqrt(max(1, _elems(shape) // max(1, shape[-1])))))
    return max(1, _elems(shape)), 1


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _node_kernel(node, shapes: dict) -> dict:
    """One data-path node as a kernel (a view, which moves no data, is a ``reshape``)."""
    op_type = node.op_type
    ins = [shapes.get(x) for x in node.input if x]
    outs = [shapes.get(x) for x in node.output if x]
    x, y = (ins[0] if ins else None), (outs[0] if outs else None)
    in_e, out_e = _elems(x), _elems(y)
    name = [node.name or node.output[0]]
    if op_type in _VIEW:
        return _kernel("reshape", 1, 1, 1, 1, in_e, out_e, nodes=name)
    if op_type in ("Conv", "ConvInteger", "QLinearConv") and x and y and len(x) == 4 and len(ins) > 1 and ins[1]:
        w = ins[1] if op_type != "QLinearConv" else ins[3]
        groups = int(_attr(node, "group", 1))
        cin, cout = x[1], y[1]
        op = "conv" if groups == 1 else "dwconv" if groups == cin == cout else "gconv"
        strides = _attr(node, "strides", [1, 1])
        # rows: the batch (RepMLP folds its partitions into it), which multiplies the MACs
        return _kernel(op, cin, cout, x[2], y[2], in_e, out_e, k=w[-1] if w else 1, stride=strides[0],
                       groups=groups, rows=x[0] or 1, nodes=name)
    if op_type in _GEMM and y:
        cout = y[-1]
        rows = max(1, out_e // max(1, cout))
        cin = x[-1] if x else 1
        if op_type == "Gemm" and _attr(node, "transA", 0) and x:
            cin = x[0]
        return _kernel("gemm", cin, cout, 1, 1, rows * cin, out_e, rows=rows, nodes=name)
    c, s = _channels_size(y or x)
    if op_type in _UNARY:
        return _kernel(_UNARY[op_type], c, c, s, s, in_e, out_e, nodes=name)
    if op_type in _BINARY:
        sizes = [_elems(shapes.get(i)) for i in node.input if i]
        broadcast = len(sizes) > 1 and min(sizes) < max(sizes)
        op = "mulbc" if broadcast else _BINARY[op_type]
        return _kernel(op, c, c, s, s, max(sizes or [in_e]), out_e, nodes=name)
    if op_type in _POOL:
        xc, xs = _channels_size(x)
        k = (_attr(node, "kernel_shape") or [1])[0]
        stride = (_attr(node, "strides") or [1])[0]
        op = _POOL[op_type]
        return _kernel(op, xc, c, xs, s if op != "gap" else 1, in_e, out_e, k=k, stride=stride, nodes=name)
    if op_type in _MOVE:
        xc, xs = _channels_size(x)
        return _kernel(_MOVE[op_type], xc, c, xs, s, in_e, out_e, nodes=name)
    # an op no class covers: priced as an element-wise op of its output's size (listed as such in the breakdown)
    k = _kernel("relu", c, c, s, s, in_e, out_e, nodes=name)
    k["unknown"] = op_type
    return k


def onnx_kernels(model) -> list[dict]:
    """The un-fused kernels of an ONNX ``ModelProto`` in graph order, each with ``consumers`` (kernel indices)
    and ``inputs_from`` (producer kernel indices)."""
    import onnx

    from benchbench.metrics.fragmentation import _tensor_info

    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    g = model.graph
    info = _tensor_info(model)
    shapes = {name: shape for name, (shape, _) in info.items()}
    initializers = {i.name for i in g.initializer}
    dynamic = {i.name for i in g.input if i.name not in initializers}
    kernels: list[dict] = []
    producer: dict[str, int] = {}
    for node in g.node:
        dyn_in = [x for x in node.input if x in dynamic]
        if node.op_type == "Constant" or not dyn_in:
            continue
        if node.op_type in ("Shape", "Size"):  # shape arithmetic: static shapes make it constant
            continue
        dynamic.update(o for o in node.output if o)
        k = _node_kernel(node, shapes)
        k["op_type"] = node.op_type
        k["inputs_from"] = sorted({producer[x] for x in dyn_in if x in producer})
        k["dyn_inputs"] = dyn_in
        k["outputs"] = [o for o in node.output if o]
        for o in k["outputs"]:
            producer[o] = len(kernels)
        kernels.append(k)
    consumers: dict[int, list[int]] = {i: [] for i in range(len(kernels))}
    for j, k in enumerate(kernels):
        for i in k["inputs_from"]:
            consumers[i].append(j)
    outputs = {o.name for o in g.output}
    for i, k in enumerate(kernels):
        k["consumers"] = consumers[i]
        k["is_output"] = any(o in outputs for o in k["outputs"])
    return _merge_activations(kernels)


def _sole(kernels, i) -> int | None:
    """The one kernel consuming kernel i's output (None if several, none, or it is a graph output)."""
    c = kernels[i]["consumers"]
    return c[0] if len(c) == 1 and not kernels[i]["is_output"] else None


def _merge_activations(kernels: list[dict]) -> list[dict]:
    """The exporter's multi-node activations as one kernel: gelu (Div, Erf, Add, Mul, Mul around Erf) and silu
    (Mul of x and sigmoid(x)), and a MatMul's bias Add as part of its gemm (``Linear`` on a 3-D tensor exports
    as the two). Merged kernels are marked ``absorbed`` and dropped at the end."""
    for i, k in enumerate(kernels):
        if k["op_type"] == "MatMul":
            nxt = _sole(kernels, i)
            if nxt is not None and kernels[nxt]["op_type"] == "Add" and len(kernels[nxt]["dyn_inputs"]) == 1:
                _absorb(kernels, [i, nxt])
        elif k["op_type"] == "Erf":
            chain = [p for p in k["inputs_from"] if kernels[p]["op_type"] == "Div"][:1] + [i]
            j = i
            for want in ("Add", "Mul", "Mul"):
                nxt = _sole(kernels, j)
                if nxt is None or kernels[nxt]["op_type"] != want:
                    break
                chain.append(nxt)
                j = nxt
            if len(chain) >= 4:
                _absorb(kernels, chain, "gelu")
        elif k["op_type"] == "Sigmoid" and not k.get("absorbed"):
            nxt = _sole(kernels, i)
            if nxt is not None and kernels[nxt]["op_type"] == "Mul" and set(k["inputs_from"]) <= \
                    set(kernels[nxt]["inputs_from"]):
                _absorb(kernels, [i, nxt], "silu")
    return _compact(kernels)


def _absorb(kernels: list[dict], chain: list[int], op: str | None = None, post: str | None = None) -> None:
    """Kernel chain[0] takes over the chain: its nodes, its last kernel's outputs and consumers."""
    head, last = kernels[chain[0]], kernels[chain[-1]]
    if op is not None:
        head.update(op=op, kind=OP_CLASS[op])
    if post is not None:
        head["post"] = post
    head["out_elems"] = last["out_elems"]
    head["consumers"] = last["consumers"]
    head["is_output"] = last["is_output"]
    head["outputs"] = last["outputs"]
    for j in chain[1:]:
        head["nodes"] += kernels[j]["nodes"]
        kernels[j]["absorbed"] = chain[0]


def _compact(kernels: list[dict]) -> list[dict]:
    """Drop absorbed kernels, renumbering producers and consumers (an absorbed index maps to its head)."""
    def root(i):
        while "absorbed" in kernels[i]:
            i = kernels[i]["absorbed"]
        return i

    keep = [i for i, k in enumerate(kernels) if "absorbed" not in k]
    new = {i: n for n, i in enumerate(keep)}
    out = []
    for i in keep:
        k = dict(kernels[i])
        k["inputs_from"] = sorted({new[root(j)] for j in k["inputs_from"] if root(j) != i})
        k["consumers"] = sorted({new[root(j)] for j in k["consumers"] if root(j) != i})
        out.append(k)
    return out


def _post_token(kernels, j, head) -> str | None:
    """What kernel j is as a post op of ``head``: bn, relu, sigmoid, hswish, gelu, clip, or add (a residual of the
    head's output shape, its other operand computed elsewhere)."""
    k = kernels[j]
    if k["op"] in ("bn", "relu", "sigmoid", "hswish", "gelu", "clip"):
        return k["op"]
    if k["op"] == "add" and k.get("op_type") == "Add" and len(k.get("dyn_inputs", ())) == 2 \
            and k["out_elems"] == head["out_elems"]:
        return "add"
    return None


_CHAINS = ("bnrelu", "addrelu", "bn", "relu", "sigmoid", "hswish", "gelu", "add", "clip")


def fuse(kernels: list[dict], rules: dict) -> list[dict]:
    """The kernels a backend with fusion ``rules`` runs: each head absorbs the longest following chain that
    ``rules`` says fuses, and records the rule's key as ``fusion``. ``rules``: ``{"<head>+<chain>": {"fused":
    bool, ...}}`` (``conv+bnrelu``, as ``analysis.fusion.fusion_rules`` gives them); a dwconv or gconv chain not
    tested falls back on the conv rule; an untested chain does not fuse."""
    kernels = [dict(k, nodes=list(k["nodes"])) for k in kernels]
    for i, k in enumerate(kernels):
        if "absorbed" in k or k["op"] not in HEADS or (k["op"] == "add" and k.get("op_type") != "Add"):
            continue
        tokens, chain, j = [], [i], i
        while len(tokens) < 2 and (nxt := _sole(kernels, j)) is not None:
            token = _post_token(kernels, nxt, k)
            if token is None:
                break
            tokens.append(token)
            chain.append(nxt)
            j = nxt
        for n in range(len(tokens), 0, -1):
            name = "".join(tokens[:n])
            key = _rule(rules, k["op"], name)
            if key is not None:
                _absorb(kernels, chain[: n + 1], post=name)
                k["fusion"] = key
                break
    return _compact(kernels)


def _rule(rules: dict, head: str, chain: str) -> str | None:
    """The rule that fuses ``chain`` behind ``head`` (its key), or None when the backend runs it apart. Rules
    fitted before Clip had experiments of its own read a Clip as a ReLU (``bnclip`` as ``bnrelu``), and still do."""
    if "clip" in chain and not any(key.endswith("+clip") for key in rules):
        chain = chain.replace("clip", "relu")
    if chain not in _CHAINS:
        return None
    for key in (f"{head}+{chain}", f"conv+{chain}" if head in ("dwconv", "gconv") else None):
        if key in rules:
            return key if rules[key]["fused"] else None
    return None


def graph_kernels(model, rules: dict) -> list[dict]:
    """A ``ModelProto``'s kernels under a backend's fusion ``rules`` (see :func:`fuse`)."""
    return fuse(onnx_kernels(model), rules)
