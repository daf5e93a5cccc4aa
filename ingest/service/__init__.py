"""The long-lived service behind `ingest run`: configuration, logging, probes, metrics, drain.

Only this package configures logging, installs signal handlers and reads configuration files;
the producer and the emulator stay embeddable libraries.
"""
