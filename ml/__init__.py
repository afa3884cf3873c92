"""Batch ML for flight-delay risk: ingest, validate, features, train, predict, monitor.

Every stage is a module usable as a library and through the ``ml`` CLI. Importing any
module does no work: paths and parameters come from :func:`ml.config.load_settings`.
"""

__version__ = "0.1.0"
