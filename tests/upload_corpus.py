"""Large and awkward uploads, made without holding them in memory, and the peak memory of decoding one.

Shared by tests/test_uploads.py and benchmarks/bench_decode.py. PNGs are written a row at a time through zlib, so a
5000x5000 or 8000x8000 picture costs the writer a few rows, not the full image; the peak is measured in a fresh
child process (Linux's VmHWM, restarted once the child has read the file), so nothing the caller allocated counts:
``resource.getrusage``'s ru_maxrss would not do, as a child inherits its parent's peak across fork and exec.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parent.parent

_PNG_COLOUR_TYPES = {"L": (0, 8), "I;16": (0, 16), "RGB": (2, 8), "RGBA": (6, 8)}


def streamed_png(width: int, height: int, mode: str, row: Callable[[int], np.ndarray]) -> bytes:
    """A PNG of ``mode`` (L, I;16, RGB or RGBA) whose row y is ``row(y)`` (uint8, or uint16 for I;16)."""
    colour_type, depth = _PNG_COLOUR_TYPES[mode]

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    compressor = zlib.compressobj(6)
    compressed = []
    for y in range(height):
        pixels = row(y)
        raw = pixels.astype(">u2").tobytes() if depth == 16 else pixels.astype(np.uint8).tobytes()
        compressed.append(compressor.compress(b"\0" + raw))
    compressed.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(compressed))
            + chunk(b"IEND", b""))


def transparent_png(side: int) -> bytes:
    """The issue's case: side x side fully transparent RGBA pixels (97 KB at 5000x5000)."""
    blank = np.zeros((side, 4), dtype=np.uint8)
    return streamed_png(side, side, "RGBA", lambda _: blank)


def seven_sketch(side: int = 400) -> np.ndarray:
    """A dark pen '7' on white paper, side x side uint8, to be blown up into a large picture."""
    paper = Image.new("L", (side, side), 255)
    ImageDraw.Draw(paper).line([(0.3 * side, 0.25 * side), (0.7 * side, 0.25 * side), (0.45 * side, 0.8 * side)],
                               fill=20, width=max(1, side // 30), joint="curve")
    return np.array(paper)


def enlarged_png(width: int, height: int, mode: str, sketch: np.ndarray | None = None) -> bytes:
    """A width x height PNG of ``sketch`` (default: seven_sketch) scaled up by repeating pixels, row by row."""
    sketch = seven_sketch() if sketch is None else sketch
    columns = np.arange(width) * sketch.shape[1] // width

    def row(y: int) -> np.ndarray:
        gray = sketch[y * sketch.shape[0] // height, columns]
        if mode == "I;16":
            return gray.astype(np.uint16) * 16  # 12-bit data: white paper is 4080, not 65535
        if mode == "RGB":
            return np.repeat(gray[:, None], 3, axis=1)
        if mode == "RGBA":
            return np.concatenate([np.repeat(gray[:, None], 3, axis=1), np.full((width, 1), 255, np.uint8)], axis=1)
        return gray

    return streamed_png(width, height, mode, row)


def photo_jpeg(width: int, height: int, quality: int = 90, progressive: bool = False, seed: int = 0) -> bytes:
    """A phone-photo-like JPEG: the 7 on paper under light falling off to one side, with sensor noise.

    The caller's process holds the full RGB picture while encoding; only the decoding is measured.
    """
    rng = np.random.default_rng(seed)
    sketch = Image.fromarray(seven_sketch()).resize((width, height), Image.Resampling.BILINEAR)
    light = np.linspace(1.0, 0.6, width, dtype=np.float32)[None, :]
    gray = np.asarray(sketch, dtype=np.float32) * light
    gray += rng.normal(0.0, 4.0, size=(height, 1)).astype(np.float32)  # cheap row-wise noise, enough for JPEG
    rgb = np.clip(gray, 0, 255).astype(np.uint8)[..., None] * np.array([1, 1, 1], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, progressive=progressive)
    return buffer.getvalue()


_MEASURE = r"""
import json, sys, threading, time, types
from pathlib import Path
# Import the decoding modules without the package's __init__ (which loads torch): the child starts in a second,
# and only the increase over its baseline is reported anyway.
package = types.ModuleType("mnist_models")
package.__path__ = [str(Path(sys.argv[1]) / "mnist_models")]
sys.modules["mnist_models"] = package
from mnist_models.preprocess import EmptyDrawingError, preprocess_stages
from mnist_models.uploads import InvalidImageError, load_uploaded_image

def status_mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

data = Path(sys.argv[2]).read_bytes()
copies = int(sys.argv[3])
Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from the current resident size
baseline = status_mb("VmRSS")
outcomes = []

def decode():
    try:
        decoded = load_uploaded_image(data)
    except InvalidImageError as error:
        outcomes.append({"refused": str(error)})
        return
    outcome = {"shape": list(decoded.image.shape), "notes": list(decoded.notes)}
    try:
        outcome["digit_shape"] = list(preprocess_stages(decoded).centred.shape)
    except EmptyDrawingError as error:
        outcome["not_a_digit"] = str(error)
    outcomes.append(outcome)

threads = [threading.Thread(target=decode) for _ in range(copies)]
start = time.perf_counter()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"baseline_mb": baseline, "peak_mb": status_mb("VmHWM"), "seconds": time.perf_counter() - start,
                  "outcome": outcomes[0]}))
"""


def measure_decode_peak(path: Path, copies: int = 1) -> dict:
    """Decode (and preprocess) the file at ``path`` in a fresh process, ``copies`` uploads at once in threads.

    Returns baseline_mb (the child's resident memory before decoding, in MiB), peak_mb (its peak while decoding and
    preprocessing), added_mb, seconds (until every copy was decoded and preprocessed), and the outcome of one
    decode: the decoded shape and notes, or the refusal message.
    """
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(REPO_ROOT), str(path), str(copies)],
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout)
    figures["added_mb"] = figures["peak_mb"] - figures["baseline_mb"]
    return figures
