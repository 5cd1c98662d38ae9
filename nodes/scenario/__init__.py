"""Scenario cloud backend for Detect; ``backend.run_scenario`` is the one entry (node and CLI).

One job per module: ``credentials``, ``urls`` (URL policy), ``client`` (transport, retries, what a
failure means), ``downloads``, ``guard`` (test harness), ``api`` (endpoints, answers parsed once into
typed records), ``jobs`` (a job's life), ``backend`` (the batch), ``cache``, ``errors``,
``network_loop`` (the thread every request runs on), ``entry`` (the node's and the CLI's way in).
Nothing here imports httpx or ComfyUI at module level, nor the local backend.
"""
