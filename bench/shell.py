"""What the side benchmarks (citus.py, guard.py, partitions.py, redact.py) share: running a
command and reading one value from psql."""

import subprocess


def run(cmd, **kw):
    """Runs `cmd`, failing on a non-zero exit; its output as text."""
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def one(psql, sql):
    """The single value `sql` returns, through the psql command line `psql`."""
    return run(psql + ["-Atc", sql]).stdout.strip()
