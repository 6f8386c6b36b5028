"""The dashboard's Streamlit glue: cached access to the library, the sidebar, figures, widgets and display text.

``app.py`` and ``pages/`` import from here; the work itself is done by ``mnist_models``, which knows nothing of
Streamlit or Plotly.
"""
