"""A number read from one picture (a photo or scan, or the wide canvas): the digits found once, every selected model
reading all of them in one forward pass, and one display of what each read, shared by both inputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from mnist_models.inference import predict_logits
from mnist_models.preprocess import DigitBox, segment_digits
from mnist_models.serving.catalog import CatalogEntry
from mnist_models.store.room_db import InputKind, ModelAnswer

from .pictures import DISPUTED, boxed_number
from .room import Shown, say_what_it_was, weights_ids
from .text import disputed_positions, number_disagreement, ordinal
from .widgets import enlarge


@dataclass(frozen=True)
class NumberReading:
    """One model's reading of the digits found in a picture, left to right."""

    name: str  # the model's name in the catalog (CatalogEntry.name)
    title: str
    digits: tuple[int, ...]
    confidences: tuple[float, ...]  # the probability of each digit it read

    @property
    def text(self) -> str:
        return "".join(map(str, self.digits))


def read_with_each(entries: list[CatalogEntry], boxes: list[DigitBox], calibrated: bool = False
                   ) -> list[NumberReading]:
    """Every available model's reading of the digits in ``boxes``, all of them in one batch per model; ``calibrated``:
    confidences from the temperature-scaled logits, as the single digit's answers on the same page."""
    if not boxes:
        return []
    digits = np.stack([box.digit for box in boxes])
    readings = []
    for entry in entries:
        if entry.network is None:  # unavailable: its checkpoint could not be loaded
            continue
        probabilities = entry.probabilities(predict_logits(entry.network, digits), calibrated)
        readings.append(NumberReading(entry.name, entry.title,
                                      tuple(int(digit) for digit in probabilities.argmax(axis=1)),
                                      tuple(float(confidence) for confidence in probabilities.max(axis=1))))
    return readings


def position_labels(readings: list[NumberReading]) -> list[str]:
    """What to write over each digit: the digit the models read, or their readings by votes ("7/1") where they
    differ."""
    return ["/".join(str(digit) for digit, _ in Counter(digits).most_common())
            for digits in zip(*(reading.digits for reading in readings), strict=True)]


def readings_table(readings: list[NumberReading], disputed: list[int]) -> pd.io.formats.style.Styler:
    """Models × digit positions: the number each reads and every digit with its confidence; the positions the
    models disagree on shaded."""
    positions = [ordinal(position + 1) for position in range(len(readings[0].digits))]
    table = pd.DataFrame([[reading.text] + [f"{digit} · {confidence:.0%}" for digit, confidence in
                                            zip(reading.digits, reading.confidences, strict=True)]
                          for reading in readings],
                         index=pd.Index([reading.title for reading in readings], name="model"),
                         columns=["reads"] + positions)
    shade = "background-color: rgba({}, {}, {}, 0.25)".format(*DISPUTED)
    return table.style.map(lambda _: shade, subset=[positions[position] for position in disputed])


def show_number(picture: np.ndarray, entries: list[CatalogEntry], calibrated: bool, input_kind: InputKind) -> None:
    """Find the digits in ``picture`` and show what each model reads: boxes and readings over the picture, the
    numbers and each digit's confidence, where the models disagree, and the 28×28 digits they were given; then let
    the visitor say what the number was (``input_kind``: where the picture came from)."""
    boxes = segment_digits(picture)
    if not boxes:
        st.info("No digit found in this picture, so the models read nothing. They read digits written side by side "
                "with a little space between them, dark on light or light on dark.", icon=":material/search_off:")
        return
    readings = read_with_each(entries, boxes, calibrated)
    st.subheader("What each model reads")
    if not readings:
        st.warning("No model is selected or available; choose some in the sidebar.")
        return
    texts = {reading.title: reading.text for reading in readings}
    disputed = disputed_positions(texts)
    (st.warning if disputed else st.success)(number_disagreement(texts))
    st.image(boxed_number(picture, boxes, position_labels(readings),
                         [position in disputed for position in range(len(boxes))]),
             caption=f"{len(boxes)} digit{'s' if len(boxes) != 1 else ''} found, left to right"
                     + ("; orange where the models disagree" if disputed else ""))
    st.table(readings_table(readings, disputed))
    st.caption("The 28×28 digits every model was given, cut out and centred the way MNIST's were:")
    st.image([enlarge(box.digit, 56) for box in boxes], caption=[ordinal(position + 1) for position in
                                                                 range(len(boxes))])
    say_what_it_was(shown_number(picture, boxes, readings, entries, input_kind))


def shown_number(picture: np.ndarray, boxes: list[DigitBox], readings: list[NumberReading],
                 entries: list[CatalogEntry], input_kind: InputKind) -> Shown:
    """The digits found in ``picture`` (as uint8, the room's format) and each model's reading of each of them."""
    digits = tuple((np.clip(box.digit, 0, 1) * 255).round().astype(np.uint8) for box in boxes)
    answers = tuple({reading.name: ModelAnswer(reading.digits[position], reading.confidences[position])
                     for reading in readings} for position in range(len(boxes)))
    return Shown(digits, answers, weights_ids(entries), picture, input_kind, is_number=True)
