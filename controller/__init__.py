"""stimctl's session controller: programs, limits, the interlock, the state machine, the
audit log, the Python API and the CLI."""

__version__ = "0.1.0"
