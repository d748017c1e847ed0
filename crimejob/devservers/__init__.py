"""Local servers that speak the real source protocols: SODA (the LAPD portal) and NCEI.

They run on 127.0.0.1 in a background thread, so the job can be exercised with no
network: ``crimejob demo`` serves the LA development world through them, and the
tests (``tests/fakes``) script faults on them. ``http`` is the server itself,
``soda`` and ``ncei`` answer each service's queries the way the real one does,
``world_feed`` turns the development world into the records each service publishes.
"""
