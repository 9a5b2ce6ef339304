"""Models shipped with the core (ESTAG and its ablations).

Every module here is imported by the registry on first use; importing one registers
its models.
"""
