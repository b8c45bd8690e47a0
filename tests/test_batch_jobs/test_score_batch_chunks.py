"""``fraud score-batch`` writes its output in chunks: every chunk must have the same Parquet
schema, whatever its rows were decided (a chunk with no flagged row has no reason names)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq


def test_chunks_without_a_flagged_row_write_the_same_file_as_one_chunk(tmp_path, champion_registry, small_sim_dir,
                                                                       small_config):
    from batch_jobs.scoring import score_batch
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open(champion_registry("focal_xgb"))
    day = sorted(small_sim_dir.iterdir())[-1]
    common = {"history_source": small_sim_dir, "progress": False}
    whole = score_batch(day, tmp_path / "whole.parquet", small_config, registry, **common)
    chunked = score_batch(day, tmp_path / "chunked.parquet", small_config, registry, chunk_rows=40, **common)
    one, many = (pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("whole", "chunked"))
    flagged = (many["decision"] != "approve").to_numpy()
    chunk = pd.Series(range(len(many))) // 40
    quiet = ~pd.Series(flagged).groupby(chunk).any()
    assert quiet.any() and (~quiet).any()          # some chunks without a flagged row, some with
    assert whole["rows"] == chunked["rows"] == len(many) and whole["decisions"] == chunked["decisions"]
    pd.testing.assert_frame_equal(one, many)
    schema = pq.read_schema(tmp_path / "chunked.parquet")
    assert all(str(schema.field(f"reason_{i}").type) in ("string", "large_string") for i in (1, 2, 3))
