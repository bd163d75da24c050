"""The benchmark: the pipeline's throughput and latency against its ceilings, in one run.

`python -m bench --help`. Each row runs its own processes against one local Kafka broker; the
targets are ratios between rows of the same run.
"""

from bench.options import Options, parse_options
from bench.results import Report, Row, Target
from bench.suite import run_benchmark

__all__ = ["Options", "Report", "Row", "Target", "parse_options", "run_benchmark"]
