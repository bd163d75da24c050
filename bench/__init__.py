"""The benchmark: the pipeline's throughput and latency against its ceilings, in one run.

`python -m bench --help`. Each row runs its own processes against one local Kafka broker; the
targets are ratios between rows of the same run.
"""

from bench.options import Options, parse_options
from bench.report import Report, Row, Target, judge

__all__ = ["Options", "Report", "Row", "Target", "judge", "parse_options"]
