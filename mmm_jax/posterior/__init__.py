"""From draws to answers: per-draw quantities, the labelled InferenceData and convergence
diagnostics (:mod:`.results`), scoring rules (:mod:`.metrics`)."""
