"""Room: the drawings visitors confirmed or corrected on Draw, how many of each digit and from which input, every
model's accuracy on them with a 95% interval, a confusion matrix, accuracy by day, and the drawings most models
misread; for a curator (behind a passphrase) relabelling, review, deletion, export and import. A database that cannot
be used is said in a sentence, and the rest of the page still renders."""

import streamlit as st

from dashboard import room
from dashboard.figures import confusion_figure
from dashboard.sidebar import chosen_dataset, selected_entries

DRAW_PAGE = "pages/draw_page.py"

st.title("The room's drawings")
st.caption("Digits drawn or photographed here on Draw, kept when the visitor tapped **Right** or said what it was "
           "(**It was …**): people, pens and screens MNIST never saw. A correction that every model was sure was "
           "wrong is held for a curator, and scores no model until it is reviewed.")

store = None
with room.room_errors_said("The room's drawings cannot be shown"):
    store = room.room_store()
    records = store.drawings()
    if not records:
        st.info("The room is empty. Draw a digit on the Draw page, then tap **Right** (or say what it was with "
                "**It was …**): each drawing kept shows up here.", icon=":material/draw:")
        st.page_link(DRAW_PAGE, label="Draw a digit", icon=":material/draw:")
    else:
        statuses = store.counts().by_status
        total, kept, held, reviewed = st.columns(4)
        total.metric("Drawings", len(records))
        kept.metric("Kept", statuses["kept"])
        held.metric("Held for a curator", statuses["held"])
        reviewed.metric("Reviewed", statuses["reviewed"])
        st.subheader("By digit and input")
        st.bar_chart(room.counts_frame(records), x_label="digit", y_label="drawings")

        st.subheader("How the models read them")
        scored = store.training_set(reviewed_only=False)
        entries = selected_entries() if chosen_dataset() == "mnist" else []
        if chosen_dataset() != "mnist":
            st.info("The room's drawings are digits: choose MNIST in the sidebar to see its models read them.",
                    icon=":material/swap_horiz:")
        elif not scored:
            st.info("Every drawing is held for a curator: none scores the models until it is reviewed.",
                    icon=":material/hourglass:")
        elif not entries:
            st.warning("No model is selected or available; choose some in the sidebar.")
        else:
            titles = {entry.name: entry.title for entry in entries}
            measurement = room.measured(entries, scored)
            st.dataframe(room.accuracy_frame(measurement, titles), hide_index=True, column_config={
                "accuracy": st.column_config.NumberColumn(format="percent"),
                "95% from": st.column_config.NumberColumn(format="percent", help="The 95% Wilson interval: with "
                                                                                "few drawings it is wide"),
                "95% to": st.column_config.NumberColumn(format="percent")})
            chosen = st.selectbox("Confusion matrix of", list(measurement.scores), format_func=titles.__getitem__,
                                  key="room_confusion_model")
            figure = confusion_figure(measurement.confusion(chosen), f"{titles[chosen]} on the room's drawings")
            st.plotly_chart(figure, key="room_confusion", config={"displayModeBar": False})
            st.markdown("**Accuracy by day**")
            st.line_chart(room.accuracy_by_day(scored, measurement, titles), y_label="accuracy")
            st.subheader("The drawings most models misread")
            room.misread_gallery(scored, measurement, titles)

st.subheader("Curation")
if room.curator_gate():
    if store is None:
        st.info("Curation needs the room's database (see above).", icon=":material/database:")
    else:
        with room.room_errors_said("The drawings cannot be curated"):
            room.drawing_curation(store, store.drawings(), {entry.name: entry.title for entry in selected_entries()})
        st.markdown("**Export** the drawings a model may train on")
        with room.room_errors_said("The drawings cannot be exported"):
            room.export_buttons(store)
        st.markdown("**Import** labelled pictures")
        with room.room_errors_said("The pictures were not imported"):
            room.import_form(store)
