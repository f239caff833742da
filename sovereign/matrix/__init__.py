"""The compliance matrix: every catalogue variant x every declared cluster x every end use.

All cells come from ONE batched policy evaluation (`PolicyEngine.decide_many`); Python only lays the
decisions out as Markdown and HTML. Denials are data: the matrix reports them, it never re-decides.
"""
