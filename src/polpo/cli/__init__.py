"""The ``polpo`` command line (Typer). Modules here import only typer and the
standard library at module level so ``polpo --help`` stays fast; each command
imports what it needs when it runs."""
