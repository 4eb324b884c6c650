"""A line for the end-of-run summary, with what is listed under it, so that the terminal lays the
list out by its structure, never by reading indentation back from text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SummaryNote:
    text: str  # e.g. "unused baselines (...):"
    items: tuple[str, ...] = ()  # one a line under the text, e.g. the unused baselines' test ids
