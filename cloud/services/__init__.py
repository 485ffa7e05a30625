"""The cloud's logic: plain functions over a SQLAlchemy session, no web framework.

Routes call these and translate :mod:`cloud.services.errors` into HTTP; the
CLI and, later, the MQTT workers call the same functions.
"""
