"""Sizes of what people type and what the app keeps, named once (models, forms, the API and
services read them from here)."""

from __future__ import annotations

# A document's title and a named version's label, in characters.
TITLE_MAX = 200
LABEL_MAX = 200
# Django's own username length.
USERNAME_MAX = 150
# How much of a title names a downloaded export file.
FILENAME_TITLE_CHARS = 80
# How much of a failure is kept: on the export its owner sees, and in a dead letter.
EXPORT_ERROR_CHARS = 2000
DEAD_LETTER_EXCEPTION_CHARS = 4000
DEAD_LETTER_TRACEBACK_CHARS = 20000
# How much of a URL or an error a log line or message quotes.
QUOTED_CHARS = 200
# An export's progress (percent) when each step starts; done is 100.
EXPORT_PROGRESS = {"reading the log": 10, "laying out": 30, "rendering PDF": 50}
