"""Scenario cloud backend for Detect: ``backend.run_scenario`` is the one entry (node and CLI).

Modules, one job each: ``credentials`` (environment / config file), ``urls`` (where the key and a
result may go), ``client`` (httpx transport and retry policy), ``transport_errors`` (what a failed
request means), ``downloads`` (result bytes, without credentials), ``guard`` (the test harness's
guard), ``records`` + ``api`` (each answer parsed once into typed records), ``jobs`` (one job's
life: detect -> poll -> asset -> download, cancel), ``backend`` (the batch), ``cache`` (on-disk
results), ``errors`` (secret-free messages), ``network_loop`` (the thread every request runs on),
``entry`` (the node's and the CLI's way in: ComfyUI's progress and interrupt wiring).
Nothing here imports httpx or ComfyUI at module level, nor the local backend (tests/test_import_graph.py).
"""
