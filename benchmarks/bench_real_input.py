"""How the shipped MNIST models fare on real input that nobody here generated: other writers' digits, and MNIST's
test digits as close-up photos, tight scans, low-resolution cameras, thicker and thinner pens deliver them.

Sources (mnist_models/real_input.py, deterministic for a seed), each kept apart: scikit-learn's bundled UCI digits
(1,797 by 43 writers, 8×8) enlarged onto the canvas, photographed on paper and enlarged to several sizes; MNIST's
test digits cropped tight, reduced to 8–16 px, photographed on paper, thickened and thinned. Each picture goes
through ``preprocess_drawing`` once; every model then reads the pictures it accepted in one batched pass. Per
source and model: refused (by preprocessing), right, wrong. Controls without a digit (the ink gate's corpus of
tests/ink_corpus.py, Fashion-MNIST's test pictures, rendered letters) show what refusing less would cost: refused,
or read as a digit (and of those, how many a model's novelty threshold flags).

Run from the repository root:

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_real_input --threads 1  # results/real_input.json
    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_real_input --quick
    ... --count 2000 --uci 500 --controls 200 --seed 3
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from benchmarks.common import (
    add_threads_option,
    apply_threads,
    environment,
    format_table,
    print_environment,
    write_json,
)
from mnist_models.data import dataset_available, load_dataset, load_mnist
from mnist_models.real_input import (
    MNIST_RENDERERS,
    RESULTS_PATH,
    RealInputResults,
    Source,
    SourceResult,
    control_source,
    evaluate_source,
    fashion_control,
    letters_control,
    mnist_source,
    uci_canvas,
    uci_paper,
    uci_sizes,
)
from mnist_models.serving.catalog import load_catalog, of_dataset
from tests.ink_corpus import no_digit_cases

NO_DIGIT_KINDS = 11
"""Kinds of picture in tests/ink_corpus.py's corpus without a digit."""


def sources(args: argparse.Namespace, skipped: dict[str, str]) -> Iterator[Source]:
    """Every source in turn, built when its turn comes (so only one is held at a time); the ones that cannot be
    built are named in ``skipped`` with why."""
    yield from (make(args.uci, args.seed) for make in (uci_canvas, uci_paper, uci_sizes))
    images, labels = (tensor.numpy() for tensor in load_mnist("test", download=False))
    yield from (mnist_source(name, images, labels, args.count, args.seed) for name in MNIST_RENDERERS)
    per_kind = max(1, args.controls // NO_DIGIT_KINDS)
    yield control_source("no-digit", (picture for _, picture in no_digit_cases(per_kind, seed=args.seed)))
    if dataset_available(None, "fashion"):
        yield fashion_control(load_dataset("fashion", "test", download=False)[0].numpy(), args.controls, args.seed)
    else:
        skipped["fashion"] = "Fashion-MNIST not found (apt-get install dataset-fashion-mnist)"
    yield letters_control(args.controls, args.seed)


def print_source(result: SourceResult) -> None:
    """One source's table: per model refused / right / wrong, or for a control refused / read as a digit."""
    print(f"\n{result.name}: {result.description} ({result.pictures} pictures, "
          f"{result.ms_per_picture or 0:.1f} ms each to preprocess)")
    if result.control:
        headers = ["model", "refused", "read as a digit", "of those flagged novel"]
        rows = [[name, f"{tally.refused} ({tally.refused / tally.pictures:.1%})", tally.wrong,
                 "–" if tally.flagged is None else tally.flagged] for name, tally in result.models.items()]
    else:
        headers = ["model", "refused", "right", "wrong"]
        rows = [[name, *(f"{count} ({count / max(tally.pictures, 1):.1%})"
                         for count in (tally.refused, tally.right, tally.wrong))]
                for name, tally in result.models.items()]
    print(format_table(headers, rows))
    findings = ", ".join(f"{finding.lower()} {count}" for finding, count in result.findings.items())
    print(f"refused for: {findings or 'nothing refused'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, help="MNIST test digits in each MNIST source (default 1000; 10 quick)")
    parser.add_argument("--uci", type=int, help="UCI digits in each UCI source (default all 1,797; 10 quick)")
    parser.add_argument("--controls", type=int, help="pictures in each control source (default 550; 11 quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every source (default 0)")
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sources")
    parser.add_argument("--json", metavar="FILE", help=f"write the results there (default {RESULTS_PATH} for a full "
                                                        f"run; none for --quick)")
    add_threads_option(parser)
    args = parser.parse_args()
    args.count = args.count or (10 if args.quick else 1000)
    args.uci = args.uci or (10 if args.quick else None)
    args.controls = args.controls or (11 if args.quick else 550)
    apply_threads(args.threads, args.quick)
    info = environment()
    print_environment(info)

    entries = [entry for entry in of_dataset(load_catalog(), "mnist") if entry.available]
    titles = {entry.name: entry.title for entry in entries}
    skipped: dict[str, str] = {}
    results = {}
    for source in sources(args, skipped):
        results[source.name] = evaluate_source(entries, source)
        print_source(results[source.name])
    record = RealInputResults(results, titles, args.seed, skipped=skipped)
    for name, why in skipped.items():
        print(f"\nskipped {name}: {why}")
    print("\nright of all digit pictures (refused ones count as not right):")
    print(format_table(["model", "right"], [[name, f"{record.accuracy(name):.1%}"] for name in titles]))
    output = args.json or (None if args.quick else RESULTS_PATH)
    if output:
        write_json(output, {"benchmark": "real_input", "environment": info, **record.to_dict()})


if __name__ == "__main__":
    main()
