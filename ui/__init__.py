"""The app's views, one module per tab; `app.py` assembles them into one `gr.Blocks`."""
