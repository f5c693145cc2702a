"""``relulab info MODEL``: describe the piecewise-linear network a model file holds."""

from __future__ import annotations

from relulab.cli import Context, Output, add_model_arguments, json_flag, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("info", description="Read a model file and describe the piecewise-linear network it holds.")
    add_model_arguments(p)
    json_flag(p)
    p.set_defaults(handler=run)


def run(args, ctx: Context) -> Output:
    mf = load_model(args)
    d = mf.describe()
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def shape(s) -> str:
        return "x".join(map(str, s))

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("file", d["file"])
    head.add_row("format", d["format"] + (f" ({d['arch']})" if d["arch"] else ""))
    head.add_row("input shape", shape(d["input_shape"]))
    head.add_row("output shape", shape(d["output_shape"]))
    head.add_row("parameters", f"{d['parameters']:,}")
    head.add_row("max units", f"{d['max_units']:,} in {d['max_layers']} layer(s)")
    head.add_row("activations", ", ".join(d["activations"]) or "none (affine)")
    head.add_row("residual", "yes" if d["residual"] else "no")
    layers = Table(title="layers", title_justify="left", show_edge=False)
    for col in ("#", "name", "kind", "in", "out", "units", "pieces", "inputs"):
        layers.add_column(col, justify="right" if col in ("#", "units", "pieces") else "left")
    for L in d["layers"]:
        layers.add_row(str(L["index"]), L["name"] or "-", L["kind"], shape(L["in_shape"]), shape(L["out_shape"]),
                       str(L.get("units", "")), str(L.get("pieces", "")), ",".join(map(str, L["inputs"])))
    return Output(d, Group(head, Text(""), layers))
