"""Subcommands of the ``autotts`` command line; each module here is one subcommand.

A module defines ``NAME`` (the subcommand), ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. The CLI discovers them; commands stay thin wrappers over
library functions.
"""
