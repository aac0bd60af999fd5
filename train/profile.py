"""Parameters and multiply-adds per layer, counted the way the MobileNet papers count them.

    python -m train profile --arch v1 --alpha 1.0 --resolution 224 --classes 1000
    # total: 4,253,864 params (4,210,088 without BatchNorm), 568,740,352 MACs   (paper: 4.2M, 569M)

Multiply-adds (MACs) are counted for convolutions, depthwise convolutions and
dense layers only: per output pixel k*k*C_in/groups*C_out for a convolution,
k*k*C*depth_multiplier for a depthwise one, and in*out for a dense layer.
BatchNorm, activations, padding, pooling and additions are free, as in the
papers (they fold into neighbouring ops or cost little next to the convs).
So are V3's element-wise products: the hard-swish multiply, the
squeeze-and-excite pooling, its hard-sigmoid gate and the multiply by the
gate (1.3% of V3-Large's MACs at 224 px; the squeeze-and-excite 1x1
convolutions are convolutions and count). That is the count the V3 paper's
appendix table 9 gives at every resolution (217M for Large, 57M for Small).

``params`` is every weight Keras stores, BatchNorm's moving statistics
included. ``params_without_bn`` leaves BatchNorm out (it folds into the
convolution before it at inference): that is what the papers count, within
their 0.1M rounding (V1 4.21M: 4.2M, V2 3.47M: 3.4M, V3-Large 5.46M: 5.4M).
"""
from __future__ import annotations


def _macs(layer) -> int:
    import keras
    kind = type(layer).__name__
    if kind == "DepthwiseConv2D":
        kh, kw = layer.kernel_size
        _, h, w, c = layer.output.shape
        return h * w * kh * kw * c
    if kind == "Conv2D":
        kh, kw = layer.kernel_size
        _, h, w, c_out = layer.output.shape
        c_in = layer.input.shape[-1]
        return h * w * kh * kw * (c_in // layer.groups) * c_out
    if isinstance(layer, keras.layers.Dense):
        return int(layer.input.shape[-1]) * layer.units
    return 0


def profile_model(model) -> dict:
    """{'params', 'params_without_bn', 'macs', 'layers': [{name, type, output_shape, params, macs}]}."""
    rows = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        shape = layer.output.shape
        rows.append({"name": layer.name, "type": type(layer).__name__,
                     "output_shape": [d for d in shape[1:]],
                     "params": int(layer.count_params()), "macs": int(_macs(layer))})
    return {"params": sum(r["params"] for r in rows),
            "params_without_bn": sum(r["params"] for r in rows if r["type"] != "BatchNormalization"),
            "macs": sum(r["macs"] for r in rows), "layers": rows}


def format_table(prof: dict) -> str:
    header = f"{'layer':<28} {'type':<22} {'output':<16} {'params':>12} {'MACs':>14}"
    lines = [header, "-" * len(header)]
    for r in prof["layers"]:
        shape = "x".join(str(d) for d in r["output_shape"])
        lines.append(f"{r['name']:<28} {r['type']:<22} {shape:<16} {r['params']:>12,} {r['macs']:>14,}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<28} {'':<22} {'':<16} {prof['params']:>12,} {prof['macs']:>14,}")
    lines.append(f"{prof['params'] / 1e6:.2f}M params ({prof['params_without_bn'] / 1e6:.2f}M without "
                 f"BatchNorm, as the papers count them), {prof['macs'] / 1e6:.1f}M MACs")
    return "\n".join(lines)
