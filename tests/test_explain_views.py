"""What the Explain page draws, without Streamlit: attribution overlays, feature-map grids, the rows read, and the
sentences and figures it builds from the library's figures."""

import numpy as np

from dashboard.figures import flip_epsilon_figure, step_probabilities_figure
from dashboard.pictures import NEGATIVE, POSITIVE, diverging, heat_overlay, magnified, map_grid, steps_read
from dashboard.text import decision_step, flip_order
from mnist_models.models.architectures import CRNN, RowRNN


def test_the_overlay_is_red_for_evidence_for_blue_against_and_keeps_the_digit_elsewhere():
    digit = np.zeros((28, 28), np.uint8)
    digit[10:18, 13:15] = 255
    heat = np.zeros((28, 28), np.float32)
    heat[0, 0], heat[27, 27] = 5.0, -5.0
    picture = heat_overlay(digit, heat)
    assert picture.shape == (28, 28, 3) and picture.dtype == np.uint8
    assert tuple(picture[0, 0]) == tuple(POSITIVE.astype(np.uint8))
    assert tuple(picture[27, 27]) == tuple(NEGATIVE.astype(np.uint8))
    assert picture[12, 13, 0] == picture[12, 13, 1] == picture[12, 13, 2] > 0  # ink stays gray where no heat
    assert picture[5, 5].sum() == 0


def test_a_map_of_zeros_draws_nothing_and_a_signed_array_diverges():
    assert heat_overlay(np.zeros((28, 28), np.uint8), np.zeros((28, 28))).sum() == 0
    values = np.array([[1.0, -1.0, 0.0]])
    picture = diverging(values)
    assert picture[0, 0, 0] > picture[0, 0, 2] and picture[0, 1, 2] > picture[0, 1, 0] and picture[0, 2].sum() == 0


def test_feature_maps_tile_into_a_grid_each_on_its_own_scale():
    maps = np.stack([np.full((4, 5), 1.0), np.arange(20, dtype=np.float32).reshape(4, 5) * 100, np.zeros((4, 5))])
    grid = map_grid(maps, columns=2, gap=1)
    assert grid.shape == (2 * 4 + 1, 2 * 5 + 1)
    second = grid[0:4, 6:11]
    assert second.min() == 0 and second.max() == 255  # scaled to its own range, however large its values
    assert grid[0:4, 0:5].max() == 0  # a constant map has no pattern to show
    assert grid[4, 0] == 64  # the gap


def test_rows_or_columns_not_yet_read_are_dimmed():
    digit = np.full((28, 28), 200, np.uint8)
    picture = steps_read(digit, RowRNN.READING, 10)
    assert picture[5, 5, 0] == 200 and picture[20, 5, 0] == 50 and picture[9, 5, 1] == 200
    picture = steps_read(digit, CRNN.READING, 2)  # two feature columns: 8 pixels
    assert picture[20, 5, 0] == 200 and picture[5, 20, 0] == 50 and picture[5, 8, 0] == 50


def test_the_decision_row_is_where_the_answer_stops_changing():
    probabilities = np.full((28, 10), 0.1)
    probabilities[:, 0] = 0.5  # 0 at first
    probabilities[16:, 0], probabilities[16:, 7] = 0.05, 0.9
    probabilities[20, 7], probabilities[20, 3] = 0.1, 0.8  # a wobble: 3 at row 21, then 7 again
    sentence = decision_step(probabilities, "RNN", RowRNN.READING)
    assert "one row at a time, top to bottom" in sentence and "settled on **7** at row 22 of 28" in sentence
    sentence = decision_step(probabilities[:7], "CNN + GRU", CRNN.READING)
    assert "one column of features (4 pixels) at a time, left to right" in sentence
    assert "settled on **0** at column 1 of 7" in sentence


def test_the_flip_order_sorts_by_epsilon_and_names_those_that_held():
    sentence = flip_order({"CNN": 0.12, "MLP": 0.03, "MobileNet": None})
    assert sentence.startswith("Flipped first to last: MLP at ε = 0.03, CNN at ε = 0.12.")
    assert "Held within the range searched: MobileNet" in sentence
    assert flip_order({"CNN": None}) == "No model flipped within the range searched."


def test_the_figures_show_their_inputs():
    probabilities = np.full((28, 10), 0.1)
    probabilities[-1] = np.eye(10)[4]
    figure = step_probabilities_figure(probabilities, RowRNN.READING, 12)
    assert len(figure.data) == 10 and figure.data[4].line.width == 3
    assert figure.layout.xaxis.title.text == "rows read (top to bottom)"
    bars = flip_epsilon_figure({"CNN": 0.2, "MLP": None}, 0.5).data[0]
    assert list(bars.y) == [0.2, 0.5] and list(bars.text) == ["0.20", "held"]


def test_magnifying_keeps_the_shape_and_the_pixels():
    grid = np.arange(6, dtype=np.uint8).reshape(2, 3)
    big = magnified(grid, 30)
    assert big.shape == (20, 30) and big[0, 0] == 0 and big[19, 29] == 5 and (big[:10, 10:20] == 1).all()
