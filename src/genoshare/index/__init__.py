"""Columnar variant index: Parquet rows per (site, ALT) with Roaring carrier bitmaps over sample numbers."""
