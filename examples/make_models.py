"""Build the small example ONNX models used by the pytest-trt examples.

Regenerate them (deterministic, no network) with:

    python examples/make_models.py

and check them with onnx's full checker and onnxruntime (CPU) with:

    python examples/make_models.py --check

Every model has a symbolic "batch" dimension, opset 17 and IR version 8 so
that older onnxruntime / TensorRT releases load them.
"""

from __future__ import annotations

import argparse
import io
import itertools
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODELS_DIR = Path(__file__).resolve().parent / "models"
OPSET = 17
IR_VERSION = 8
PRODUCER = "pytest-trt examples"
BATCH = "batch"


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    return rng.normal(0.0, std, size=shape).astype(np.float32)


def _weight(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return _normal(rng, shape, 1.0 / np.sqrt(fan_in))


def _bias(rng: np.random.Generator, size: int) -> np.ndarray:
    # Non-zero so that the bias paths actually affect the outputs being gated.
    return _normal(rng, (size,), 0.1)


def _init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(array, name)


def _model(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        doc_string=doc,
    )
    # make_model stamps the newest IR version; pin it so older runtimes load the file.
    model.ir_version = IR_VERSION
    return model


def make_mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    dims = [256, 256, 256, 10]
    nodes, inits = [], []
    x = "x"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
        inits += [_init(f"fc{i}.weight", _weight(rng, (fan_in, fan_out), fan_in)),
                  _init(f"fc{i}.bias", _bias(rng, fan_out))]
        if i == len(dims) - 2:  # last layer: raw logits, no activation
            nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], ["y"]))
        else:
            nodes += [helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [f"fc{i}"]),
                      helper.make_node("Relu", [f"fc{i}"], [f"relu{i}"])]
            x = f"relu{i}"
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, 10])],
        inits,
    )
    return _model(graph, "MLP 256-256-256-10 with ReLU.")


def make_cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    nodes, inits = [], []
    x = "image"
    for i, (c_in, c_out) in enumerate([(3, 16), (16, 32)]):
        inits += [_init(f"conv{i}.weight", _weight(rng, (c_out, c_in, 3, 3), c_in * 9)),
                  _init(f"conv{i}.bias", _bias(rng, c_out))]
        nodes += [
            helper.make_node("Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"conv{i}"],
                             kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]),
            helper.make_node("MaxPool", [f"relu{i}"], [f"pool{i}"],
                             kernel_shape=[2, 2], strides=[2, 2]),
        ]
        x = f"pool{i}"
    inits += [_init("fc.weight", _weight(rng, (32, 10), 32)), _init("fc.bias", _bias(rng, 10))]
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [BATCH, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [BATCH, 10])],
        inits,
    )
    return _model(graph, "Two conv blocks, global average pool and a linear head.")


def make_encoder() -> onnx.ModelProto:
    rng = np.random.default_rng(2)
    vocab, seq, d_model, heads, d_ff = 1000, 16, 64, 4, 128
    d_head = d_model // heads
    nodes: list[onnx.NodeProto] = []
    inits = [
        _init("tok_emb", _normal(rng, (vocab, d_model), 1.0)),
        _init("pos_emb", _normal(rng, (seq, d_model), 1.0)),
        # Reshape shapes use 0 ("copy this dim") so the batch dim stays dynamic.
        _init("heads_shape", np.array([0, 0, heads, d_head], dtype=np.int64)),
        _init("merge_shape", np.array([0, 0, d_model], dtype=np.int64)),
        _init("attn_scale", np.array(1.0 / np.sqrt(d_head), dtype=np.float32)),
        _init("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32)),
        _init("one", np.array(1.0, dtype=np.float32)),
        _init("half", np.array(0.5, dtype=np.float32)),
    ]

    def node(op: str, inputs: list[str], output: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def linear(x: str, name: str, fan_in: int, fan_out: int) -> str:
        inits.extend([_init(f"{name}.weight", _weight(rng, (fan_in, fan_out), fan_in)),
                      _init(f"{name}.bias", _bias(rng, fan_out))])
        return node("Add", [node("MatMul", [x, f"{name}.weight"], f"{name}.mm"), f"{name}.bias"],
                    name)

    def layer_norm(x: str, name: str) -> str:
        inits.extend([_init(f"{name}.weight", np.ones(d_model, np.float32)),
                      _init(f"{name}.bias", np.zeros(d_model, np.float32))])
        return node("LayerNormalization", [x, f"{name}.weight", f"{name}.bias"], name,
                    axis=-1, epsilon=1e-5)

    emb = node("Gather", ["tok_emb", "tokens"], "tok")
    h = node("Add", [emb, "pos_emb"], "embed")

    # Pre-LN self attention: [B, S, D] -> [B, H, S, Dh] per projection.
    a = layer_norm(h, "ln1")
    q, k, v = (node("Reshape", [linear(a, n, d_model, d_model), "heads_shape"], f"{n}.heads")
               for n in ("q", "k", "v"))
    q = node("Transpose", [q], "q.t", perm=[0, 2, 1, 3])
    k = node("Transpose", [k], "k.t", perm=[0, 2, 3, 1])  # [B, H, Dh, S] = K^T
    v = node("Transpose", [v], "v.t", perm=[0, 2, 1, 3])
    scores = node("Mul", [node("MatMul", [q, k], "qk"), "attn_scale"], "scores")
    probs = node("Softmax", [scores], "probs", axis=-1)
    ctx = node("Transpose", [node("MatMul", [probs, v], "ctx")], "ctx.t", perm=[0, 2, 1, 3])
    ctx = node("Reshape", [ctx, "merge_shape"], "ctx.merged")
    h = node("Add", [h, linear(ctx, "attn_out", d_model, d_model)], "res1")

    # FFN with exact GELU written out with Erf: the Gelu op only exists from opset 20.
    f = linear(layer_norm(h, "ln2"), "ffn1", d_model, d_ff)
    erf = node("Erf", [node("Div", [f, "sqrt2"], "gelu.div")], "gelu.erf")
    gelu = node("Mul", [node("Mul", [f, node("Add", [erf, "one"], "gelu.add")], "gelu.mul"),
                        "half"], "gelu")
    node("Add", [h, linear(gelu, "ffn2", d_ff, d_model)], "hidden")

    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [BATCH, seq])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [BATCH, seq, d_model])],
        inits,
    )
    return _model(graph, "One pre-LN transformer encoder block, 4 heads, d_model 64.")


def write_mlp_inputs(path: Path) -> None:
    x = np.random.default_rng(7).uniform(-1.0, 1.0, size=(32, 256)).astype(np.float32)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, x)
    # np.savez stamps the current time into the zip entry; a fixed date keeps the file
    # byte-identical across runs.
    info = zipfile.ZipInfo("x.npy", date_time=(1980, 1, 1, 0, 0, 0))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(info, buf.getvalue())


BUILDERS = {"mlp": make_mlp, "cnn": make_cnn, "encoder": make_encoder}


def write_all() -> None:
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        path = MODELS_DIR / f"{name}.onnx"
        path.write_bytes(build().SerializeToString(deterministic=True))
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    path = MODELS_DIR / "mlp_inputs.npz"
    write_mlp_inputs(path)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def _feed(model: onnx.ModelProto, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feed = {}
    for inp in model.graph.input:
        dims = [batch if d.dim_param else d.dim_value for d in inp.type.tensor_type.shape.dim]
        if inp.type.tensor_type.elem_type == TensorProto.INT64:
            feed[inp.name] = rng.integers(0, 1000, size=dims, dtype=np.int64)
        else:
            feed[inp.name] = rng.standard_normal(dims).astype(np.float32)
    return feed


def verify() -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(123)
    for name in BUILDERS:
        path = MODELS_DIR / f"{name}.onnx"
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for batch in (1, 4, 8):
            feed = _feed(model, batch, rng)
            first = sess.run(None, feed)
            second = sess.run(None, feed)
            for out, a, b in zip(sess.get_outputs(), first, second, strict=False):
                assert a.shape[0] == batch, (name, out.name, a.shape)
                assert np.isfinite(a).all(), (name, out.name)
                assert np.array_equal(a, b), (name, out.name)
                print(f"{name}: batch={batch} {out.name} shape={list(a.shape)} "
                      f"finite, repeatable, mean={a.mean():+.4f} std={a.std():.4f}")

    with np.load(MODELS_DIR / "mlp_inputs.npz") as data:
        x = data["x"]
    assert x.shape == (32, 256) and x.dtype == np.float32
    sess = ort.InferenceSession(str(MODELS_DIR / "mlp.onnx"), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x})
    assert y.shape == (32, 10) and np.isfinite(y).all()
    print(f"mlp_inputs.npz: x shape={list(x.shape)} -> mlp y shape={list(y.shape)} finite")
    print("all checks passed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="verify the models in examples/models instead of writing them")
    args = parser.parse_args()
    if args.check:
        verify()
    else:
        write_all()


if __name__ == "__main__":
    main()
