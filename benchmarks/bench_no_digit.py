"""How often the ink gate of mnist_models.preprocess reads real digits, and refuses pictures that hold none.

Two generated corpora (tests/ink_corpus.py, deterministic for a seed): real digits in eight kinds, deliberately hard
for a gate (MNIST test digits as they are, small on a large canvas, thinned by erosion, photographed on paper under
uneven light; digits drawn with 8, 20 and 40 px brushes on the 280 px canvas, and drawn thin and photographed), and
pictures without a digit in eleven kinds (a tap, a single bright pixel, a 2-pixel image, a red square, blank paper,
Gaussian noise, a tiny speck, a horizontal line, a faint blob, a filled shape, scattered specks). For each picture,
``analyse_ink`` says what it found; the rates are the share of real digits found digit-like and the share of the
rest refused, with the finding of each refusal and the time per picture.

Run from the repository root:

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_no_digit  # benchmarks/results/no_digit.json
    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_no_digit --quick
    ... --digits 4000 --per-kind 200 --seed 3
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from pathlib import Path

from benchmarks.common import environment, format_table, print_environment, write_json
from mnist_models.data import load_mnist
from mnist_models.preprocess import InkFinding, analyse_ink
from tests.ink_corpus import no_digit_cases, real_digit_cases

RESULTS = Path(__file__).resolve().parent / "results" / "no_digit.json"


def tally(cases, want_digit: bool) -> tuple[dict, list[str], float]:
    """Per kind: pictures, findings; the names of the pictures judged wrongly; the mean milliseconds per picture."""
    kinds: dict[str, dict] = defaultdict(lambda: {"pictures": 0, "findings": Counter()})
    wrong, elapsed = [], 0.0
    for name, image in cases:
        start = time.perf_counter()
        finding = analyse_ink(image).finding
        elapsed += time.perf_counter() - start
        kind = kinds[name.split(" #")[0]]
        kind["pictures"] += 1
        kind["findings"][finding.name] += 1
        if (finding is InkFinding.DIGIT_LIKE) != want_digit:
            wrong.append(name)
    count = sum(kind["pictures"] for kind in kinds.values())
    return {name: {"pictures": kind["pictures"], "findings": dict(kind["findings"])} for name, kind in kinds.items()}, \
        wrong, 1000 * elapsed / max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, help="real-digit pictures (default 2000; 80 quick)")
    parser.add_argument("--per-kind", type=int, help="pictures of each kind without a digit (default 100; 5 quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both corpora (default 0)")
    parser.add_argument("--quick", action="store_true", help="smoke run with small corpora")
    parser.add_argument("--json", metavar="FILE", help=f"write the results there (default {RESULTS} for a full run; "
                                                        f"none for --quick)")
    args = parser.parse_args()
    digits = args.digits or (80 if args.quick else 2000)
    per_kind = args.per_kind or (5 if args.quick else 100)
    info = environment()
    print_environment(info)

    mnist_images = load_mnist("test")[0].numpy()
    real, missed, real_ms = tally(real_digit_cases(digits, seed=args.seed, mnist_images=mnist_images), True)
    blank, accepted, blank_ms = tally(no_digit_cases(per_kind, seed=args.seed), False)
    read_rate = 1 - len(missed) / digits
    refusal_rate = 1 - len(accepted) / sum(kind["pictures"] for kind in blank.values())

    def rows(kinds: dict, digit_wanted: bool) -> list[list[str]]:
        table = []
        for name, kind in kinds.items():
            right = kind["findings"].get("DIGIT_LIKE", 0) if digit_wanted else \
                kind["pictures"] - kind["findings"].get("DIGIT_LIKE", 0)
            findings = ", ".join(f"{finding.lower()} {count}" for finding, count in
                                 sorted(kind["findings"].items(), key=lambda item: -item[1]))
            table.append([name, f"{right}/{kind['pictures']}", findings])
        return table

    print(f"\nreal digits read: {read_rate:.2%} of {digits} ({real_ms:.1f} ms a picture)")
    print(format_table(["kind", "read", "findings"], rows(real, True)))
    print(f"\npictures without a digit refused: {refusal_rate:.2%} of {per_kind * len(blank)} "
          f"({blank_ms:.1f} ms a picture)")
    print(format_table(["kind", "refused", "findings"], rows(blank, False)))
    if missed or accepted:
        print("\njudged wrongly:", ", ".join(missed + accepted))
    output = args.json or (None if args.quick else RESULTS)
    if output:
        write_json(output, {"benchmark": "ink_gate", "environment": info, "seed": args.seed,
                            "real_digits": {"pictures": digits, "read_rate": read_rate, "ms_per_picture": real_ms,
                                            "kinds": real, "missed": missed},
                            "no_digit": {"pictures_per_kind": per_kind, "refusal_rate": refusal_rate,
                                         "ms_per_picture": blank_ms, "kinds": blank, "accepted": accepted}})


if __name__ == "__main__":
    main()
