"""The operations console: a Textual app over the store for operators and on-call staff.

The console never touches SQL: every screen calls :mod:`core` functions (inside Textual
workers, so the interface never waits on the database) and writes only *requests*
(launch, pause, resume, run now) that the scheduler carries out, wherever it runs.
"""
