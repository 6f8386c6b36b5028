"""Draw: a digit from the canvas or an upload, its MNIST-style preprocessing, and every model's answer, or why no
answer is given (no digit in the picture, or one the models do not recognise as a digit); or a whole number, drawn on
a wide canvas or photographed, read digit by digit by every model. Under the answers the visitor may say what it was
("Right", "It was …"), which keeps it in the room's drawings (dashboard/room.py). With another dataset chosen in the
sidebar (Fashion-MNIST), an uploaded picture of clothing instead: a canvas is for digits."""

import time

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from dashboard.figures import probabilities_figure
from dashboard.handoff import EXPLAIN_PAGE, remember_drawing
from dashboard.reading import show_number
from dashboard.room import say_what_it_was, shown_digit
from dashboard.sidebar import calibrated, chosen_dataset, selected_entries
from dashboard.text import agreement, novelty_verdict
from dashboard.timing import record
from dashboard.widgets import enlarge, model_problems, uploaded_picture
from mnist_models.data import get_dataset
from mnist_models.novelty import refuse
from mnist_models.preprocess import EmptyDrawingError, NotADigitError, clothing_picture, preprocess_stages
from mnist_models.serving.catalog import predict_with_each

DRAW, NUMBER, UPLOAD, PHOTO = "Draw", "Draw a number", "Upload an image", "Photo or scan of a number"
PICTURE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]
# (width, height) in px. st_canvas takes a fixed size: a canvas wider than the page scrolls inside itself, and a
# finger drawing on it cannot scroll it, so a phone gets one that fits its screen (390 px less the page's margins).
NUMBER_CANVASES = {"Wide": (840, 280), "Medium": (560, 220), "Phone": (340, 140)}

spec = get_dataset(chosen_dataset())
st.title("Draw a digit" if spec.name == "mnist" else f"Show the {spec.title} models a picture")
model_problems()


def canvas_picture(width: int, height: int, key: str, caption: str) -> np.ndarray | None:
    """A black canvas with white ink, like MNIST, and the stroke width beside it; what is drawn on it, None before
    the first stroke. The canvas keeps its ``key`` for the page's life: it clears itself in the browser (its bin
    button), so strokes made right after clearing are never lost to a server round trip or a remounted canvas."""
    left, right = st.columns([2, 1]) if width <= 280 else (st.container(), st.container())
    with right:
        stroke = st.slider("Stroke width", 8, 40, 20, key="stroke_width")
        st.caption(caption)
    with left:
        canvas = st_canvas(stroke_width=stroke, stroke_color="#FFFFFF", background_color="#000000", height=height,
                           width=width, drawing_mode="freedraw", return_image_data=True, key=key)
    return canvas.image_data


def number_canvas() -> np.ndarray | None:
    """The wide canvas for several digits in a row, in the size chosen (a phone's screen is narrow)."""
    size = st.segmented_control("Canvas width", list(NUMBER_CANVASES), default="Wide", key="number_canvas_size",
                                format_func=lambda name: f"{name} ({NUMBER_CANVASES[name][0]} px)",
                                help="The canvas has a fixed width: choose one that fits your screen (Phone on a "
                                     "phone held upright)")
    width, height = NUMBER_CANVASES[size or "Wide"]
    return canvas_picture(width, height, f"number_canvas_{width}",
                          "Write a few digits side by side, with a little space between them. The readings update "
                          "when you lift the pen; the bin above the canvas clears it.")


def photo_of_a_number() -> np.ndarray | None:
    """A photo or scan of a number, uploaded or taken with the camera (asked for only when wanted: the browser asks
    the visitor's permission for it)."""
    if st.toggle("Take a photo with the camera", key="use_camera"):
        upload = st.camera_input("A photo of a number: digits side by side, dark on light paper")
    else:
        upload = st.file_uploader("A photo or scan of a number: digits side by side, dark on light or light on dark",
                                  type=PICTURE_TYPES, key="number_upload")
    return uploaded_picture(upload) if upload is not None else None


@st.fragment
def drawing_and_answers() -> None:
    """What a stroke changes. A fragment: a new drawing reruns only this, not the sidebar and the rest of the app, so
    the server sends the answers without re-sending the page around them."""
    started = time.perf_counter()
    source = st.radio("Input", [DRAW, NUMBER, UPLOAD, PHOTO], horizontal=True, label_visibility="collapsed")
    if source in (NUMBER, PHOTO):
        picture = number_canvas() if source == NUMBER else photo_of_a_number()
        if picture is None:
            st.info("Write a few digits side by side, or upload a photo of a number, to see what each model reads.",
                    icon=":material/pin:")
        else:
            kind = "canvas" if source == NUMBER else "camera" if st.session_state.get("use_camera") else "upload"
            show_number(picture, selected_entries(), calibrated(), kind)
        return
    if source == DRAW:
        image = canvas_picture(280, 280, "canvas", "White ink on black, like MNIST. The predictions update when you "
                               "lift the pen. To start again, click the bin (**Reset canvas**) above the canvas.")
    else:
        upload = st.file_uploader("A picture of one digit (dark on light or light on dark; a phone photo works)",
                                  type=PICTURE_TYPES)
        image = uploaded_picture(upload) if upload is not None else None

    if image is None:
        st.info("Draw a digit on the canvas, or upload a picture, to see every model's prediction.",
                icon=":material/gesture:")
        return
    try:
        stages = preprocess_stages(image)
    except NotADigitError as error:
        st.info(f"{error} The models only answer when there is a digit to read.", icon=":material/search_off:")
        return
    except EmptyDrawingError as error:
        st.info(f"{error} The models only answer when there is a digit to read.", icon=":material/gesture:")
        return

    # The models answer before anything else is drawn: while the page's elements stream out, the server's event loop
    # takes the GIL from the inference and each model's time would include that wait instead of its own work.
    predictions = predict_with_each(selected_entries(), stages.centred, calibrated())
    remember_drawing(stages.centred)
    st.subheader("Predictions")
    if not predictions:
        st.warning("No model is selected or available; choose some in the sidebar.")
        return
    refused = refuse(prediction.novel for prediction in predictions)
    if refused:
        st.warning(novelty_verdict(predictions), icon=":material/help:")
    else:
        verdict = agreement(predictions)
        (st.success if verdict.startswith("All") else st.warning)(verdict)
    answers = st.expander("Their guesses anyway", icon=":material/visibility:") if refused else st.container()
    with answers:
        for column, prediction in zip(st.columns(len(predictions)), predictions, strict=True):
            unlike = " · unlike its training digits" if prediction.novel else ""
            column.metric(prediction.title, prediction.digit, f"{prediction.confidence:.1%} sure", delta_color="off")
            column.caption(f"{prediction.latency_ms:.1f} ms{unlike}")
        st.plotly_chart(probabilities_figure([prediction.title for prediction in predictions],
                                             [prediction.probabilities for prediction in predictions]),
                        key="probabilities", config={"displayModeBar": False})
    server_ms = (time.perf_counter() - started) * 1000
    record("draw", server_ms)
    st.caption(f"The server answered in {server_ms:.0f} ms (from the drawing's arrival to these answers, every "
               f"model included).")
    kind = "canvas" if source == DRAW else "upload"
    say_what_it_was(shown_digit(stages.centred, image, predictions, selected_entries(), kind))
    st.page_link(EXPLAIN_PAGE, label="Why these answers? Explain this digit, and find where each model breaks",
                 icon=":material/psychology:")

    st.subheader("Preprocessing, the way MNIST was made")
    steps = {"paper's brightness (estimated; shadows)": stages.background, "ink against the paper": stages.gray,
             "cropped to the ink": stages.cropped, "scaled to fit 20×20": stages.fitted,
             "centred by mass in 28×28": stages.centred}
    # One element for the five pictures, not five columns of one each: every element is a message the browser renders.
    st.image([enlarge(picture) for picture in steps.values()], caption=list(steps), width=140)


def clothing_and_answers() -> None:
    """The chosen dataset's models (not digits: clothing) answer an uploaded picture, made like their pictures."""
    st.info(f"The {spec.title} models read pictures of clothing, so the canvas is not offered: upload a photo of "
            f"one piece ({', '.join(spec.classes)}), ideally on a plain background. Choose MNIST in the sidebar to "
            f"draw a digit.", icon=":material/checkroom:")
    upload = st.file_uploader("A picture of one piece of clothing", type=PICTURE_TYPES, key="clothing_upload")
    picture = uploaded_picture(upload) if upload is not None else None
    if picture is None:
        return
    try:
        image = clothing_picture(picture)
    except EmptyDrawingError as error:
        st.info(f"{error} The models only answer when there is something to look at.", icon=":material/search_off:")
        return
    predictions = predict_with_each(selected_entries(), image, calibrated())
    if not predictions:
        st.warning("No model is selected or available; choose some in the sidebar.")
        return
    st.image(enlarge(image), caption=f"What the models see: made like {spec.title}'s pictures", width=140)
    for column, prediction in zip(st.columns(len(predictions)), predictions, strict=True):
        column.metric(prediction.title, spec.classes[prediction.digit], f"{prediction.confidence:.1%} sure",
                      delta_color="off")
    st.plotly_chart(probabilities_figure([prediction.title for prediction in predictions],
                                         [prediction.probabilities for prediction in predictions], list(spec.classes)),
                    key="clothing_probabilities", config={"displayModeBar": False})


if spec.name == "mnist":
    drawing_and_answers()
else:
    clothing_and_answers()
