"""Fragmentation of the deploy graph, read from the exported ONNX file (before any backend fusion).

* ``graph_ops``: nodes of the main graph, ``Constant`` nodes excluded (they hold data, not work).
* ``dag_width``: the maximum antichain of the op DAG: the largest set of ops no two of which are
  connected by a path, i.e. the most ops that could run at the same time. Computed exactly with
  Dilworth's theorem: width = n - (maximum matching in the bipartite graph of the transitive closure),
  with networkx.
  Only ops that depend on the graph input count (constant-only side computations are left out).
  A plain chain has width 1, a block with k parallel branches width k.
* ``joins``: ops merging data paths: Add/Sub/Mul/Div/Sum/Mean/Max/Min/Concat with >= 2 inputs that
  depend on the graph input (a bias or scale held as a constant is not a path).
* ``mac_bytes``: memory access cost after ShuffleNetV2 (Ma et al., 2018): the sum over ops of the bytes
  of every input (activations and weights) and every output, shapes from ``onnx.shape_inference``.
  Ops that move no data in any runtime (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Shape, Size)
  are left out. A tensor read by two ops is counted twice: each op reads it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["JOIN_OPS", "NO_DATA_OPS", "graph_metrics", "graph_metrics_of", "max_antichain"]

JOIN_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Sum", "Mean", "Max", "Min", "Concat"})
NO_DATA_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Size"})


def max_antichain(n: int, edges: list[tuple[int, int]]) -> int:
    """Width of a DAG with nodes ``0..n-1`` and the given edges (Dilworth: n - maximum matching of its closure).

    networkx (a dependency of torch) does the graph work. scipy's ``maximum_bipartite_matching`` is not
    used: it takes exponential time on layered graphs such as these closures (scipy issue #26147).
    """
    import networkx as nx

    dag = nx.DiGraph()
    dag.add_nodes_from(range(n))
    dag.add_edges_from(edges)
    if not nx.is_directed_acyclic_graph(dag):
        raise ValueError("the graph has a cycle")
    # Bipartite graph: u on the left linked to v on the right (n + v) whenever v is reachable from u.
    bipartite = nx.Graph()
    bipartite.add_nodes_from(range(2 * n))
    bipartite.add_edges_from((u, n + v) for u, v in nx.transitive_closure_dag(dag).edges())
    matching = nx.bipartite.hopcroft_karp_matching(bipartite, top_nodes=range(n))
    return n - len(matching) // 2  # the matching maps both ways: each pair appears twice


def _tensor_info(model) -> dict[str, tuple[list | None, int]]:
    """name → (shape or None if unknown, ONNX element type) for every value in the main graph."""
    info: dict[str, tuple[list | None, int]] = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        shape = None
        if t.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            shape = None if any(d is None for d in dims) else dims
        info[vi.name] = (shape, t.elem_type)
    for init in g.initializer:
        info[init.name] = (list(init.dims), init.data_type)
    for node in g.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    info[node.output[0]] = (list(attr.t.dims), attr.t.data_type)
    return info


def _nbytes(shape: list[int] | None, elem_type: int) -> int | None:
    import math

    from onnx.helper import tensor_dtype_to_np_dtype

    if shape is None or not elem_type:
        return None
    return math.prod(shape) * tensor_dtype_to_np_dtype(elem_type).itemsize


def graph_metrics(onnx_path: str | Path) -> dict:
    """Fragmentation metrics of an ONNX file (see the module docstring). Weights are never loaded."""
    import onnx

    return graph_metrics_of(onnx.load(str(onnx_path), load_external_data=False))


def graph_metrics_of(model) -> dict:
    """Fragmentation metrics of an ONNX ``ModelProto`` (shapes are inferred here)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    g = model.graph
    nodes = [nd for nd in g.node if nd.op_type != "Constant"]
    info = _tensor_info(model)

    # Which values depend on the graph input (a "data path"), in graph order (ONNX nodes are topological).
    initializers = {i.name for i in g.initializer}
    dynamic = {i.name for i in g.input if i.name not in initializers}
    producer: dict[str, int] = {}
    for i, nd in enumerate(nodes):
        if any(x in dynamic for x in nd.input if x):
            dynamic.update(o for o in nd.output if o)
        for o in nd.output:
            if o:
                producer[o] = i

    data_nodes = [i for i, nd in enumerate(nodes) if any(o in dynamic for o in nd.output)]
    index = {i: k for k, i in enumerate(data_nodes)}
    edges = {(index[producer[x]], index[i]) for i in data_nodes for x in nodes[i].input
             if x in producer and producer[x] in index}

    joins = sum(1 for nd in nodes if nd.op_type in JOIN_OPS and sum(1 for x in nd.input if x in dynamic) >= 2)

    mac, unknown = 0, 0
    for nd in nodes:
        if nd.op_type in NO_DATA_OPS:
            continue
        for name in [x for x in nd.input if x] + [o for o in nd.output if o]:
            b = _nbytes(*info.get(name, (None, 0)))
            if b is None:
                unknown += 1
            else:
                mac += b
    by_type: dict[str, int] = {}
    for nd in nodes:
        by_type[nd.op_type] = by_type.get(nd.op_type, 0) + 1
    return {
        "graph_ops": len(nodes),
        "graph_ops_by_type": dict(sorted(by_type.items())),
        "dag_width": max_antichain(len(data_nodes), sorted(edges)),
        "joins": joins,
        "mac_bytes": mac,
        "mac_unknown_tensors": unknown,  # tensors whose shape inference failed: mac_bytes is a lower bound
        "source": f"exported ONNX (opset {next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), '?')}) "
                  "with onnx.shape_inference",
    }
