"""Bulk actions (issue 19): retry, discard or cancel every job of a list that matches a filter,
or the rows an operator ticked, after a dry run whose count the operator confirms.

``model.py`` is what pages, the API and the CLI show; ``store.py`` keeps a run's state in the
source's Redis under jobbridge's prefix; ``runner.py`` walks the list and acts in small batches
through the same per-job path (and Lua scripts) as single actions.
"""
