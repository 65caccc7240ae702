"""The ``arena`` command line: thin commands over the library, joined in :mod:`.main`."""
