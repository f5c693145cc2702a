"""relulab report DIR: one self-contained HTML page from a results folder."""

from __future__ import annotations

from relulab.cli import Context, Output, json_flag


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page from a results folder",
                       description="Build report.html from a sweep, reproduction or demo folder (or a folder of them).")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--output", metavar="FILE", default=None, help="where to write (default DIR/report.html)")
    json_flag(p)
    p.set_defaults(handler=run)


def run(args, ctx: Context) -> Output:
    from relulab.experiments.report import write_report

    path = write_report(args.folder, args.output)
    return Output({"report": str(path)}, f"wrote {path}")
