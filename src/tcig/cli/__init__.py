"""The ``tcig`` command line: a root parser (:mod:`.main`) and one module per command."""
