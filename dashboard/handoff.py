"""What one page hands to the Explain page: the digit the visitor last drew (or one of the room's), or a test image
opened from a gallery. Kept apart from the explanations themselves so the pages that hand over do not load the
attribution library."""

from __future__ import annotations

import numpy as np
import streamlit as st

EXPLAIN_PAGE = "pages/explain_page.py"
LAST_DRAWING_KEY = "last_drawing"  # the 28×28 digit the Draw page last answered
SOURCE_KEY = "explain_source"  # not a widget key: Streamlit forgets a widget's value on pages that do not show it
TEST_INDEX_KEY = "explain_test_index"
DRAWING, TEST_IMAGE = "Your drawing", "A test image"


def remember_drawing(digit: np.ndarray) -> None:
    """Keep the digit the Draw page just answered, so Explain opens on it."""
    st.session_state[LAST_DRAWING_KEY] = digit
    st.session_state[SOURCE_KEY] = DRAWING


def open_test_image(index: int) -> None:
    """Switch to Explain showing test image ``index``."""
    st.session_state[TEST_INDEX_KEY] = int(index)
    st.session_state[SOURCE_KEY] = TEST_IMAGE
    st.switch_page(EXPLAIN_PAGE)


def open_drawing(digit: np.ndarray) -> None:
    """Switch to Explain showing ``digit`` (28×28) as the visitor's drawing: one of the room's, say."""
    remember_drawing(digit)
    st.switch_page(EXPLAIN_PAGE)
