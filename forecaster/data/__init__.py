"""Data shipped inside the package (see PROVENANCE.md beside this file)."""

from pathlib import Path

SAMPLE_CSV = Path(__file__).parent / "btcusdt_1m_sample.csv.gz"
