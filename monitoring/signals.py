"""Signals other apps listen to (monitoring imports no app above it)."""

from django.dispatch import Signal

#: A monitoring run finished evaluating the newest windows: ``version_ids`` and ``window_end``.
#: The incidents app turns the results into alerts.
evaluated = Signal()
