"""Peak memory and time of decoding (and preprocessing) large and awkward uploads, one at a time and eight at once.

Each file is generated here (PNGs a row at a time, JPEGs through Pillow), written to a temporary folder, and decoded
by ``load_uploaded_image`` and then ``preprocess_stages`` in a fresh child process (tests/upload_corpus.py): the
figure is the child's peak resident memory (Linux VmHWM) over its resident memory just before decoding, in MiB, so
nothing this script allocated to make the files counts. The budget is +300 MiB for any accepted upload (issue 9,
item 3). Refused files show the refusal, which comes from the header alone.

Run from the repository root (Linux only: it reads /proc/self/status):

    .venv/bin/python -m benchmarks.bench_decode            # all cases, writes benchmarks/results/decode.json
    .venv/bin/python -m benchmarks.bench_decode --quick    # three small cases, writes nothing unless --json
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import environment, format_table, print_environment, write_json
from tests.upload_corpus import enlarged_png, measure_decode_peak, photo_jpeg, streamed_png, transparent_png

RESULTS = Path(__file__).resolve().parent / "results" / "decode.json"
BUDGET_MB = 300

FULL_CASES: list[tuple[str, Callable[[], bytes], int]] = [
    ("5000x5000 transparent PNG (the issue's file)", lambda: transparent_png(5000), 1),
    ("8000x8000 RGBA PNG of a 7", lambda: enlarged_png(8000, 8000, "RGBA"), 1),
    ("8000x8000 RGB PNG of a 7", lambda: enlarged_png(8000, 8000, "RGB"), 1),
    ("8000x8000 gray PNG of a 7", lambda: enlarged_png(8000, 8000, "L"), 1),
    ("6000x6000 16-bit PNG, 12-bit data", lambda: enlarged_png(6000, 6000, "I;16"), 1),
    ("12 MP JPEG photo (4000x3000)", lambda: photo_jpeg(4000, 3000), 1),
    ("50 MP JPEG photo (8660x5773)", lambda: photo_jpeg(8660, 5773), 1),
    ("50 MP progressive JPEG photo", lambda: photo_jpeg(8660, 5773, progressive=True), 1),
    ("9000x9000 RGBA PNG (over the full-decode limit)", lambda: enlarged_png(9000, 9000, "RGBA"), 1),
    ("10000x10000 gray PNG (over the bomb limit)", lambda: streamed_png(10000, 10000, "L", lambda _: _BLANK_ROW), 1),
    ("8 at once: 5000x5000 transparent PNG", lambda: transparent_png(5000), 8),
    ("8 at once: 8000x8000 RGBA PNG", lambda: enlarged_png(8000, 8000, "RGBA"), 8),
    ("8 at once: 12 MP JPEG photo", lambda: photo_jpeg(4000, 3000), 8),
]
QUICK_CASES: list[tuple[str, Callable[[], bytes], int]] = [
    ("3000x3000 transparent PNG", lambda: transparent_png(3000), 1),
    ("2000x2000 16-bit PNG, 12-bit data", lambda: enlarged_png(2000, 2000, "I;16"), 1),
    ("2 at once: 12 MP JPEG photo", lambda: photo_jpeg(4000, 3000), 2),
]

_BLANK_ROW = np.zeros(10000, dtype=np.uint8)


def outcome_text(outcome: dict) -> str:
    if "refused" in outcome:
        return "refused: " + outcome["refused"][:70]
    read = "x".join(map(str, outcome["shape"][:2][::-1]))
    return f"read at {read}, " + ("a digit" if "digit_shape" in outcome else "no digit: " + outcome["not_a_digit"][:40])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: three small cases")
    parser.add_argument("--json", metavar="FILE", help=f"write the results there (default {RESULTS} for a full run; "
                                                        f"none for --quick)")
    args = parser.parse_args()
    info = environment()
    print_environment(info)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, make, copies in QUICK_CASES if args.quick else FULL_CASES:
            path = Path(folder) / "upload"
            path.write_bytes(make())
            figures = measure_decode_peak(path, copies=copies)
            rows.append({"case": name, "copies": copies, "file_bytes": path.stat().st_size,
                         "baseline_mib": round(figures["baseline_mb"], 1), "added_mib": round(figures["added_mb"], 1),
                         "seconds": round(figures["seconds"], 2), "outcome": figures["outcome"]})
            print(f"  {name}: +{figures['added_mb']:.0f} MiB, {figures['seconds']:.2f} s", flush=True)
    print(f"\npeak memory over the process's baseline (budget +{BUDGET_MB} MiB for one accepted upload)")
    print(format_table(["case", "file", "added MiB", "seconds", "outcome"],
                       [[row["case"], f"{row['file_bytes'] / 1e6:.2f} MB", f"{row['added_mib']:.0f}",
                         f"{row['seconds']:.2f}", outcome_text(row["outcome"])] for row in rows]))
    single = [row for row in rows if row["copies"] == 1 and "refused" not in row["outcome"]]
    worst = max(single, key=lambda row: row["added_mib"])
    print(f"\nworst single accepted upload: {worst['case']}, +{worst['added_mib']:.0f} MiB: "
          f"{'within' if worst['added_mib'] <= BUDGET_MB else 'OVER'} the budget")
    output = args.json or (None if args.quick else RESULTS)
    if output:
        write_json(output, {"benchmark": "upload_decoding", "environment": info, "unit": "MiB",
                            "budget_mib": BUDGET_MB, "cases": rows})


if __name__ == "__main__":
    main()
