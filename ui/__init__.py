"""The Gradio views over `explorer`: one module per view, plus what views share.

views     schedules, posterior, sampling, parameterizations (each builds its tab and wires its events;
          no view imports another)
shared    controls (control groups read as one frozen value; `bind` adapts handlers to Gradio), state (the
          per-session run store), launch (the one launch configuration), common (errors, event queues),
          models (which models the page offers and may load), restore (URL parameters)
"""
