"""What every service runs on: its settings, logs, lifecycle (start-up, signals, exit codes),
probes and tracing, and awaiting work that a stop may end."""

__all__ = [
    "lifecycle",
    "logs",
    "probes",
    "settings",
    "tasks",
    "tracing",
]
