"""Benchmarks as data: `python -m scripts.bench COMMAND`.

    python -m scripts.bench list                          the studies (scripts/bench/studies/*.yaml) and their runs
    python -m scripts.bench run STUDY [--seeds 0 1] [--only RUN ...] [--ray] [--beside TEXT]
                                                          train them; one record per (run, seed) in docs/benchmarks/records/
    python -m scripts.bench report [--check]              docs/benchmarks/*.md + *.png and the README's results block,
                                                          from the records alone (--check: fail if they differ)
    python -m scripts.bench rerun RECORD [--out DIR]      train a record's own config again and compare

Throughput benchmarks keep their own entry points (python -m scripts.bench.{envs,gpu,ppo,reach,text} --help) and
write records with --record.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def seed(text: str) -> int:
    """A --seeds value: an integer >= 0, as scripts.train's seed."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed (an integer >= 0)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="studies and their runs")
    run = commands.add_parser("run", help="train a study's runs and write their records")
    run.add_argument("study", help="a study name (scripts/bench/studies/NAME.yaml) or a YAML path")
    run.add_argument("--seeds", type=seed, nargs="+", help="these seeds instead of the study's")
    run.add_argument("--only", nargs="+", help="these runs of the study only")
    run.add_argument("--ray", action="store_true", help="run the trials on Ray (scripts.sweep's machinery)")
    run.add_argument("--beside", default="", help="what else ran on the machine meanwhile (kept in the records)")
    run.add_argument("--records", type=Path, default=None, help="records folder (default docs/benchmarks/records)")
    run.add_argument("--runs", type=Path, default=None, help="run directories (default runs/bench)")
    report = commands.add_parser("report", help="generate the benchmark pages from the records")
    report.add_argument("--records", type=Path, default=None)
    report.add_argument("--out", type=Path, default=None, help="pages folder (default docs/benchmarks)")
    report.add_argument("--readme", type=Path, default=None, help="README whose results block is rewritten")
    report.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page differs")
    rerun = commands.add_parser("rerun", help="train a record's own config again")
    rerun.add_argument("record", type=Path, help="a record's JSON (docs/benchmarks/records/STUDY/RUN.seedN.json)")
    rerun.add_argument("--out", type=Path, default=Path("runs/rerun"), help="where the new run and record go")
    rerun.add_argument("--beside", default="")
    args = parser.parse_args(argv)

    from scripts.bench.study import StudyError, known_studies, load_study  # noqa: PLC0415

    try:
        if args.command == "list":
            for name in known_studies():
                study = load_study(name)
                print(f"{name:<24} {study.title} — runs: {', '.join(study.runs)}; seeds {list(study.seeds)}")
            return 0
        if args.command == "run":
            study = load_study(args.study)  # a bad study or run name: refused before torch and the engine load
            study.selected(args.only)
            from scripts.bench import runner  # noqa: PLC0415
            from scripts.bench.record import RECORDS  # noqa: PLC0415
            from scripts.cli import check_overrides  # noqa: PLC0415
            from scripts.run_setup import CONF_DIR  # noqa: PLC0415

            for spec in study.runs.values():  # bad agent / env / key names: one line before any work
                plain = [o for o in (*study.overrides, *spec.overrides) if "{{" not in o]  # placeholders: made later
                check_overrides(CONF_DIR, "train", [f"agent={spec.agent}", f"env={spec.env}", *plain])
            written = runner.run_study(study, args.seeds, args.only, records_root=args.records or RECORDS,
                                       runs_root=args.runs or runner.RUNS, note=args.beside, use_ray=args.ray)
            print(f"{len(written)} record(s) written; pages: python -m scripts.bench report")
            return 0
        if args.command == "report":
            from scripts.bench import pages  # noqa: PLC0415

            return pages.main(args.records, args.out, args.readme, args.check)
        from scripts.bench import runner  # noqa: PLC0415

        runner.rerun(args.record, args.out, args.beside)
        return 0
    except (StudyError, ValueError, FileNotFoundError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
