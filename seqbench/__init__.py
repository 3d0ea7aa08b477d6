"""seqbench's public Python API: read the results of `seqbench run` / `seqbench bench`.

    import seqbench
    frame = seqbench.read_results("results/")            # a pandas DataFrame, typed
    frame = seqbench.read_results("results/throughput")  # one suite

A results folder is also a plain Parquet dataset (`pandas.read_parquet("results/")`, duckdb's
`read_parquet('results/**/*.parquet')`); this read adds the types (nullable ints and bools), unpacks the
extra columns kept in `extra_json`, reads older folders, and checks every file's schema.
"""

from harness.results import read_results, read_table

__all__ = ["read_results", "read_table"]
