"""Exporters for retraining: PaddleOCR / PaddleX detection and recognition sets, ICDAR 2015, Label Studio."""
