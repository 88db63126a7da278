"""Moved to ``flows/router.py``; kept while the follow-through modules move (removed below)."""

from .flows.router import Coordinator, Outcome

__all__ = ["Coordinator", "Outcome"]
