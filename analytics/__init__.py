"""Pure numpy emissions analytics: the shared data model, the formulas and the event-time engine.

Nothing in this package does I/O or imports a protocol library.
"""
