"""ipywidgets for reviewing and correcting OCR predictions in JupyterLab (import name: svtr_label_widgets)."""
