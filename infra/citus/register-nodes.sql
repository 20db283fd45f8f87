-- The cluster's members, registered on the coordinator (infra/citus/compose.yml runs this
-- once all nodes answer). Every call is idempotent: a node already known keeps its id.

-- The coordinator by the name the workers reach it at: they connect back to it (metadata,
-- the rebalancer's moves). It holds the platform schema, and no tenant schema: the
-- default for the coordinator is shouldhaveshards = false.
SELECT citus_set_coordinator_host('coordinator', 5432);

-- The workers, where citus_schema_distribute places the tenant schemas.
SELECT citus_add_node('worker-1', 5432);
SELECT citus_add_node('worker-2', 5432);

SELECT nodename, nodeport, noderole, shouldhaveshards FROM pg_dist_node ORDER BY nodeid;
