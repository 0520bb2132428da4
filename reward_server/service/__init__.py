"""The HTTP reward service around the library: :mod:`.app` (FastAPI routes, settings, ``serve``), :mod:`.batcher`
(one scorer call per micro-batch), :mod:`.prometheus` (``GET /metrics``) and :mod:`.local` (a server in a child
process, waited on until ready). ``rrg-reward serve`` (:mod:`reward_server.cli`) runs it; the Ray Serve
deployment is :mod:`reward_server.ray`.
"""
