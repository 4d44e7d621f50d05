-- A deliberate mistake: replica C commits asynchronously but asks for AUTOMATIC failover.
-- Automatic failover needs SYNCHRONOUS_COMMIT (R-FAIL-1), so the script parses but its
-- configuration is refused, at the line of the CREATE statement, naming the rule:
--
--   line 9, column 1: CREATE AVAILABILITY GROUP [ag1]: the configuration breaks 1 rule:
--     - R-FAIL-1: replica 'C' has FAILOVER_MODE = AUTOMATIC but AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT; automatic failover needs SYNCHRONOUS_COMMIT
--
-- (types/tests/tsql.rs checks that this comment stays the message the parser gives.)
CREATE AVAILABILITY GROUP ag1
WITH (CLUSTER_TYPE = EXTERNAL)
FOR DATABASE db1
REPLICA ON
    N'A' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC),
    N'B' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC),
    N'C' WITH (AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC);
