"""The ingest: feeds under supervision, folded into the market, published through the
engine, persisted by the store writer."""
