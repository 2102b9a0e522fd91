"""Where and how runs execute, for sweeps and targets alike; none of it changes what is computed.

``cluster``: the Ray session (an embedded local Ray, or a cluster attached by address) and a
command's :class:`~hptransfer.runtime.cluster.Execution` settings; ``resources``: a trial's
resources and a target's workers (the spec's ``resources:``, ``ray:`` and ``target:``
sections); ``identity``: a run's deterministic ids and its row in ``trials.parquet``.
"""
