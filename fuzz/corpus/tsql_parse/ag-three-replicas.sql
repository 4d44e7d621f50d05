-- ag1: three replicas under an external cluster manager (etcd), two databases.
--
--   A, B  SYNCHRONOUS_COMMIT, AUTOMATIC failover   (A is listed first: the initial primary)
--   C     ASYNCHRONOUS_COMMIT, MANUAL failover, a readable secondary for reporting
--
-- Read-intent connections to the listener go to the secondaries (R-READ-3): while A is
-- primary, round-robin over C and B; while B is primary, C first, then A; while C is
-- primary, B first, then A. Every replica named in a routing list has a READ_ONLY_ROUTING_URL.
--
--   cargo test -p hadr-types --test tsql     parses this file and pins the AgConfig it gives

CREATE AVAILABILITY GROUP [ag1]
WITH (
    AUTOMATED_BACKUP_PREFERENCE = SECONDARY,   -- back up on a secondary (C has the top priority)
    FAILURE_CONDITION_LEVEL = 3,
    HEALTH_CHECK_TIMEOUT = 30000,              -- milliseconds
    DB_FAILOVER = ON,
    REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 0,
    CLUSTER_TYPE = EXTERNAL
)
FOR DATABASE [sales], [stock]
REPLICA ON
    N'A' WITH (
        ENDPOINT_URL = N'tcp://sql-a.example.com:5022',
        AVAILABILITY_MODE = SYNCHRONOUS_COMMIT,
        FAILOVER_MODE = AUTOMATIC,
        SEEDING_MODE = AUTOMATIC,
        BACKUP_PRIORITY = 30,
        SECONDARY_ROLE (ALLOW_CONNECTIONS = READ_ONLY,
                        READ_ONLY_ROUTING_URL = N'tcp://sql-a.example.com:1433'),
        PRIMARY_ROLE (ALLOW_CONNECTIONS = READ_WRITE,
                      READ_ONLY_ROUTING_LIST = (('C', 'B')))
    ),
    N'B' WITH (
        ENDPOINT_URL = N'tcp://sql-b.example.com:5022',
        AVAILABILITY_MODE = SYNCHRONOUS_COMMIT,
        FAILOVER_MODE = AUTOMATIC,
        SEEDING_MODE = AUTOMATIC,
        BACKUP_PRIORITY = 30,
        SECONDARY_ROLE (ALLOW_CONNECTIONS = READ_ONLY,
                        READ_ONLY_ROUTING_URL = N'tcp://sql-b.example.com:1433'),
        PRIMARY_ROLE (ALLOW_CONNECTIONS = READ_WRITE,
                      READ_ONLY_ROUTING_LIST = ('C', 'A'))
    ),
    N'C' WITH (
        ENDPOINT_URL = N'tcp://sql-c.example.com:5022',
        AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT,
        FAILOVER_MODE = MANUAL,
        SEEDING_MODE = AUTOMATIC,
        BACKUP_PRIORITY = 60,
        SESSION_TIMEOUT = 15,                  -- seconds
        SECONDARY_ROLE (ALLOW_CONNECTIONS = READ_ONLY,
                        READ_ONLY_ROUTING_URL = N'tcp://sql-c.example.com:1433'),
        PRIMARY_ROLE (ALLOW_CONNECTIONS = READ_WRITE,
                      READ_ONLY_ROUTING_LIST = ('B', 'A'))
    );
GO
