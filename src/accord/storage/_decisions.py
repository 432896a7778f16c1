"""Gateway decision records: one row per gateway pass, written with the change it explains."""
