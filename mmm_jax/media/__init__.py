"""Media transforms: adstock families (:mod:`.adstock`, PyTensor Ops with JAX dispatch and NumPy
references) and saturation curves (:mod:`.saturation`)."""
