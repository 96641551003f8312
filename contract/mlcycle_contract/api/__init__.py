"""The API types of mlcycle's custom resources: the single source of truth for the CRDs.

The package imports none of its modules: the model server needs only the algorithm table,
and building every resource's pydantic models would add about 0.15 s to its cold start.
`mlcycle_contract.api.kinds.RESOURCES` lists the three resources.
"""
