"""Label Studio ML backend serving svtr-label pre-annotation."""
