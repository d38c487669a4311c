"""Data: sources (ontologies, files) -> rows ``(concept_id, name, text, kind)`` -> pairs -> batches."""
