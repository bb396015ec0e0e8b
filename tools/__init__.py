"""Command-line tools outside the runtime package: training and scoring the bundled models, model cards."""
