"""Drivers: the I/O around each sans-I/O decision in ``interlock.core``."""
