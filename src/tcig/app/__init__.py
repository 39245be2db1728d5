"""``tcig app``: a local web page to paint a layout, generate from it and keep the results.

:mod:`~tcig.app.painting` (classes, colours, painting <-> layout), :mod:`~tcig.app.uploads` (uploaded layout files),
:mod:`~tcig.app.jobs` (the fair, cancellable run queue), :mod:`~tcig.app.studio` (what the app does),
:mod:`~tcig.app.server` (HTTP) and ``static/`` (the page).
"""
