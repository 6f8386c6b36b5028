"""The real-input sources and their evaluation (mnist_models.real_input): each source is deterministic for a seed,
shaped and labelled as documented; an evaluation's tallies add up; the results record round-trips, and its loader
tolerates a missing file and refuses a bad or newer one. How many pictures preprocessing accepts is not asserted:
that is what the benchmark measures, and it changes with preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from mnist_models.preprocess import EmptyDrawingError, preprocess_drawing
from mnist_models.real_input import (
    CANVAS,
    LETTERS,
    MNIST_RENDERERS,
    NO_DIGIT,
    RESULTS_ENV,
    RESULTS_VERSION,
    UCI_SIZES,
    ModelTally,
    RealInputResults,
    Source,
    SourceResult,
    evaluate_source,
    fashion_control,
    letters_control,
    load_real_input_results,
    mnist_source,
    tight_crop,
    uci_canvas,
    uci_digits,
    uci_paper,
    uci_sizes,
)
from mnist_models.store.records import RecordError


def fake_mnist(count: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-like digits (light strokes on black in a 20×20 box of a 28×28 field) with labels 0..9 in turn."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        image = Image.new("L", (28, 28), 0)
        points = [tuple(int(value) for value in rng.integers(4, 24, size=2)) for _ in range(4)]
        ImageDraw.Draw(image).line(points, fill=255, width=3)
        images.append(np.asarray(image))
    return np.stack(images), np.arange(count) % 10


def same(first: Source, second: Source) -> bool:
    return [label for _, label in first.cases] == [label for _, label in second.cases] and all(
        np.array_equal(a, b) for (a, _), (b, _) in zip(first.cases, second.cases, strict=True))


@pytest.mark.parametrize("make", [uci_canvas, uci_paper, uci_sizes])
def test_uci_sources_are_deterministic_for_a_seed_and_keep_the_true_labels(make):
    source = make(6, seed=1)
    assert len(source) == 6 and not source.control and source.description
    assert same(source, make(6, seed=1)) and not same(source, make(6, seed=2))
    images, labels = uci_digits()
    assert images.shape == (1797, 8, 8) and 0 <= images.min() and images.max() <= 1
    assert {label for _, label in source.cases} <= set(range(10))
    assert [label for _, label in source.cases] == [label for _, label in uci_canvas(6, seed=1).cases]  # same picks


def test_uci_sources_have_their_documented_sizes():
    assert all(picture.shape == (CANVAS, CANVAS) and picture.dtype == np.uint8 for picture, _ in uci_canvas(3).cases)
    assert all(picture.shape == (CANVAS, CANVAS, 3) and picture.dtype == np.uint8 for picture, _ in uci_paper(3).cases)
    sides = [picture.shape for picture, _ in uci_sizes(len(UCI_SIZES) * 2).cases]
    assert sides == [(side, side) for side in UCI_SIZES] * 2


def test_uci_canvas_is_light_ink_on_dark_and_paper_dark_ink_on_light():
    canvas, paper = uci_canvas(1).cases[0][0], uci_paper(1).cases[0][0]
    assert np.median(canvas) < 128 < canvas.max()
    assert np.median(paper) > 128 > paper.min()


@pytest.mark.parametrize("name", list(MNIST_RENDERERS))
def test_mnist_sources_are_deterministic_shaped_and_labelled(name):
    images, labels = fake_mnist()
    source = mnist_source(name, images, labels, 5, seed=3)
    assert source.name == name and len(source) == 5 and not source.control
    assert same(source, mnist_source(name, images, labels, 5, seed=3))
    assert not same(source, mnist_source(name, images, labels, 5, seed=4))
    for picture, label in source.cases:
        assert picture.dtype == np.uint8 and label in labels
        if name == "mnist-tight":
            assert max(picture.shape[:2]) == CANVAS
        else:
            assert picture.shape[:2] == (CANVAS, CANVAS)
    assert (source.cases[0][0].ndim == 3) == (name == "mnist-paper")
    # the digits picked are the same in every MNIST source at one seed; only the rendering differs
    assert [label for _, label in source.cases] == [label for _, label in
                                                    mnist_source("mnist-thin", images, labels, 5, seed=3).cases]
    assert len(mnist_source(name, images, labels, None).cases) == len(images)


def test_a_tight_crop_leaves_no_margin():
    digit = np.zeros((28, 28), np.uint8)
    digit[5:20, 10:14] = 255
    crop = tight_crop(digit)
    assert crop.shape == (CANVAS, round(4 * CANVAS / 15))
    assert crop[0].max() > 0.5 and crop[-1].max() > 0.5  # ink at the top and bottom edges


def test_controls_hold_no_digit():
    letters = letters_control(8, seed=0)
    assert letters.control and len(letters) == 8 and {label for _, label in letters.cases} == {NO_DIGIT}
    assert all(picture.shape == (CANVAS, CANVAS) and picture.max() > 0 for picture, _ in letters.cases)
    assert same(letters, letters_control(8, seed=0))
    assert not set(LETTERS) & set("OoIlSsZzBbgq")
    clothes = fashion_control(fake_mnist(10)[0], 4, seed=0)
    assert clothes.control and len(clothes) == 4 and clothes.cases[0][0].shape == (CANVAS, CANVAS)


class Stub:
    """A catalog entry whose network reads every picture as a 3 (and has no novelty threshold)."""

    name = "stub"
    evaluation = None

    def __init__(self) -> None:
        self.network = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        with torch.no_grad():
            self.network[1].weight.zero_()
            self.network[1].bias.copy_(torch.eye(10)[3])


class Unavailable:
    name, network, evaluation = "broken", None, None


def expected_refusals(source: Source) -> set[int]:
    refused = set()
    for index, (picture, _) in enumerate(source.cases):
        try:
            preprocess_drawing(picture)
        except EmptyDrawingError:
            refused.add(index)
    return refused


def test_an_evaluation_counts_each_picture_once_per_model_and_adds_up():
    images, labels = fake_mnist()
    digits = mnist_source("mnist-thick", images, labels, 6, seed=0)
    cases = [*digits.cases, (np.zeros((CANVAS, CANVAS), np.uint8), 5)]  # and one blank picture
    source = Source("mixed", "test pictures", cases)
    result = evaluate_source([Stub(), Unavailable()], source)
    assert list(result.models) == ["stub"]  # a model that could not be loaded is left out
    tally = result.models["stub"]
    assert tally.refused + tally.right + tally.wrong == tally.pictures == len(cases)
    refused = expected_refusals(source)
    assert tally.refused == result.refused == len(refused) == sum(result.findings.values())
    assert {index for index, _ in result.refused_pictures} == refused
    assert tally.right == sum(label == 3 for index, (_, label) in enumerate(cases) if index not in refused)
    assert tally.flagged is None


def test_a_control_s_accepted_pictures_are_all_wrong():
    result = evaluate_source([Stub()], letters_control(4))
    tally = result.models["stub"]
    assert result.control and tally.right == 0 and tally.refused + tally.wrong == 4


def results(version: int = RESULTS_VERSION) -> dict:
    digits = SourceResult("uci-canvas", "UCI", False, 10, {"FAINT": 4},
                          {"cnn": ModelTally(10, 4, 5, 1), "mlp": ModelTally(10, 4, 3, 3, flagged=1)})
    control = SourceResult("letters", "letters", True, 4, {}, {"cnn": ModelTally(4, 0, 0, 4, flagged=2)})
    data = RealInputResults({"uci-canvas": digits, "letters": control}, {"cnn": "CNN", "mlp": "MLP"}, seed=0,
                            skipped={"fashion": "not found"}).to_dict()
    return {**data, "format_version": version}


def test_the_record_round_trips_and_gives_each_model_s_real_input_accuracy(tmp_path):
    path = tmp_path / "real_input.json"
    path.write_text(json.dumps({"benchmark": "real_input", **results()}))
    loaded = load_real_input_results(path)
    assert loaded is not None and loaded.to_dict() | {"created": None} == results() | {"created": None}
    assert loaded.accuracy("cnn") == 0.5 and loaded.accuracy("mlp") == 0.3 and loaded.accuracy("rnn") is None
    assert [source.name for source in loaded.controls] == ["letters"]
    assert loaded.sources["uci-canvas"].refused == 4 and loaded.skipped == {"fashion": "not found"}


def test_the_loader_tolerates_a_missing_file_and_reads_the_environment_s_path(tmp_path, monkeypatch):
    assert load_real_input_results(tmp_path / "absent.json") is None
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "elsewhere.json"))
    assert load_real_input_results() is None
    (tmp_path / "elsewhere.json").write_text(json.dumps(results()))
    assert load_real_input_results() is not None


@pytest.mark.parametrize(("content", "message"), [
    (json.dumps(results(RESULTS_VERSION + 1)), "newer than this digit-lab reads"),
    ("{not json", "is not JSON"),
    (json.dumps([1, 2]), "should be a JSON object"),
    (json.dumps({"format_version": 1}), "'sources' is missing"),
    (json.dumps({**results(), "sources": {"x": {"pictures": 3, "models": {"cnn": {"pictures": 3, "refused": 1,
                                                                                  "right": 1, "wrong": 0}}}}}),
     "do not add up"),
    (json.dumps({**results(), "sources": {"x": {"pictures": "3", "models": {}}}}), "'pictures' should be int"),
])
def test_the_loader_refuses_a_bad_or_newer_file_naming_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "real_input.json"
    path.write_text(content)
    with pytest.raises(RecordError, match=message):
        load_real_input_results(path)
