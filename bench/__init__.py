"""Benchmarks of the chat server: fan-out throughput, cross-replica latency, connection memory, history.

Run ``python -m bench --help``. Results go to ``bench/results/`` as JSON, Markdown and PNG, one set per
scenario. See ``bench/README.md`` for what each scenario measures and the figures measured so far.
"""
