"""Scenario cloud backend for Detect: ``backend.run_scenario`` is the one entry (node and CLI).

Modules: ``credentials`` (environment / config file), ``client`` (httpx transport, retry policy),
``jobs`` (detect -> poll -> asset -> download, cancel), ``cache`` (on-disk results), ``errors``
(secret-free messages), ``node_run`` (ComfyUI progress and interrupt wiring). Nothing here imports
httpx or ComfyUI at module level.
"""
