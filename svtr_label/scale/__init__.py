"""Scale-out: pre-annotate 10^5-10^6 pages on a Ray cluster, exactly once and resumable.

`inputs` lists what a job reads (folders, s3:// and gs:// prefixes, manifests), `output` is the
job's folder of committed shards and task files, `actors` is what runs on the cluster, `job` the
driver. Ray is optional (the `ray` extra) and imported only when a job starts.
"""
