"""Draw: a digit from the canvas or an upload, its MNIST-style preprocessing, and every model's answer, or why no
answer is given (no digit in the picture, or one the models do not recognise as a digit)."""

import time

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from dashboard.figures import probabilities_figure
from dashboard.handoff import EXPLAIN_PAGE, remember_drawing
from dashboard.sidebar import calibrated, selected_entries
from dashboard.text import agreement, novelty_verdict
from dashboard.timing import record
from dashboard.widgets import enlarge, model_problems
from mnist_models.novelty import refuse
from mnist_models.preprocess import (
    EmptyDrawingError,
    InvalidImageError,
    NotADigitError,
    load_uploaded_image,
    preprocess_stages,
)
from mnist_models.store.catalog import predict_with_each

st.title("Draw a digit")
model_problems()


@st.fragment
def drawing_and_answers() -> None:
    """What a stroke changes. A fragment: a new drawing reruns only this, not the sidebar and the rest of the app, so
    the server sends the answers without re-sending the page around them."""
    started = time.perf_counter()
    source = st.radio("Input", ["Draw", "Upload an image"], horizontal=True, label_visibility="collapsed")
    image = None
    if source == "Draw":
        left, right = st.columns([2, 1])
        with right:
            stroke = st.slider("Stroke width", 8, 40, 20, key="stroke_width")
            st.caption("White ink on black, like MNIST. The predictions update when you lift the pen. To start again, "
                       "click the bin (**Reset canvas**) above the canvas.")
        with left:
            # One key for the page's life: the canvas clears itself in the browser (its bin button), so strokes made
            # right after clearing are never lost to a server round trip or a remounted canvas.
            canvas = st_canvas(stroke_width=stroke, stroke_color="#FFFFFF", background_color="#000000", height=280,
                               width=280, drawing_mode="freedraw", return_image_data=True, key="canvas")
        image = canvas.image_data
    else:
        upload = st.file_uploader("A picture of one digit (dark on light or light on dark; a phone photo works)",
                                  type=["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"])
        if upload is not None:
            frame_key = f"frame_{upload.file_id}"  # a new file starts at its first frame
            try:
                decoded = load_uploaded_image(upload.getvalue(), st.session_state.get(frame_key, 1) - 1)
            except InvalidImageError as error:
                st.error(str(error), icon=":material/broken_image:")
            else:
                image = decoded.image
                if decoded.frame_count > 1:
                    st.number_input(f"Frame to read (the file has {decoded.frame_count})", 1, decoded.frame_count,
                                    key=frame_key)
                for note in decoded.notes:
                    st.caption(note)

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
    st.page_link(EXPLAIN_PAGE, label="Why these answers? Explain this digit, and find where each model breaks",
                 icon=":material/psychology:")

    st.subheader("Preprocessing, the way MNIST was made")
    steps = {"paper's brightness (estimated; shadows)": stages.background, "ink against the paper": stages.gray,
             "cropped to the ink": stages.cropped, "scaled to fit 20×20": stages.fitted,
             "centred by mass in 28×28": stages.centred}
    # One element for the five pictures, not five columns of one each: every element is a message the browser renders.
    st.image([enlarge(picture) for picture in steps.values()], caption=list(steps), width=140)


drawing_and_answers()
