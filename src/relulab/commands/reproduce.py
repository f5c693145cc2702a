"""relulab reproduce: the paper experiments of the registry."""

from __future__ import annotations

from relulab.cli import Context, Output, json_flag, output_folder


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce a paper's headline experiment (see --list)",
                       description="Run a registered paper experiment and put its result beside the paper's claim.")
    p.add_argument("name", nargs="?", metavar="NAME", help="registered experiment (see --list)")
    p.add_argument("--list", action="store_true", help="list the registered experiments")
    p.add_argument("--quick", action="store_true", help="the small grid (under a minute)")
    p.add_argument("--out", metavar="DIR", type=output_folder, default=None,
                   help="write reproduction.json, results.csv and report.html into DIR")
    json_flag(p)
    p.set_defaults(handler=run)


def run(args, ctx: Context) -> Output:
    from rich.table import Table

    from relulab.core.errors import InvalidInputError
    from relulab.experiments.reproduction import listing, reproduce

    if args.list:
        items = listing()
        t = Table(show_edge=False)
        for c in ("name", "tasks (quick/full)", "paper"):
            t.add_column(c)
        for e in items:
            note = f" [needs {', '.join(e['missing'])}]" if e["missing"] else ""
            t.add_row(e["name"], f"{e['quick_tasks']}/{e['full_tasks']}", e["paper"] + note)
        return Output({"experiments": items}, t)
    if not args.name:
        raise InvalidInputError("give an experiment NAME or --list")
    with ctx.progress(args.name, "tasks") as update:
        doc = reproduce(args.name, quick=args.quick, out=args.out, progress=update)
    t = Table(title=f"{doc['title']} ({doc['grid']} grid: {doc['tasks']} tasks, {doc['seconds']:.1f} s)",
              title_justify="left", show_edge=False)
    for c in ("quantity", "paper", "this run"):
        t.add_column(c)
    for c in doc["comparison"]:
        t.add_row(c["quantity"], c["paper"], c["this_run"])
    from rich.console import Group
    from rich.text import Text

    parts = [Text(f"paper: {doc['paper']}"), t]
    if doc["verdict"]:
        parts.append(Text(f"verdict: {doc['verdict']}"))
    if doc["failures"]:
        parts.append(Text(f"{len(doc['failures'])} task(s) failed: {doc['failures'][0]['error']}"))
    if doc["files"]:
        parts.append(Text(f"wrote {', '.join(doc['files'])} to {args.out}"))
    return Output(doc, Group(*parts), exit_code=1 if doc["failures"] and not doc["rows"] else 0)
