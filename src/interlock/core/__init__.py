"""Sans-I/O decisions: pure objects fed with events and clock readings, returning what to do.

Nothing in this package sleeps, reads a socket or touches a file; drivers in ``client``,
``inbox`` and ``sync`` do the I/O around them. Tests drive them with ``testing.FakeClock``.
"""
