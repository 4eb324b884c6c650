"""Everything before a measurement: models exported, transformed, quantized and built into engines."""
