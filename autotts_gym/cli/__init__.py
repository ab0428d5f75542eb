"""The ``autotts`` command line (``main``), its subcommands and method specs: the application
layer, the only code that imports the core, agents and collection, lazily per subcommand."""
