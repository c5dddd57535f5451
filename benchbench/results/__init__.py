"""The results stage: records, schema, journal, views, comparisons, estimates."""
