/* comments /* nest
GO
*/ */
Create Availability Group [sales]]ag]
with ( automated_backup_preference = primary , Db_Failover = on, FAILURE_CONDITION_LEVEL = 2,
       health_check_timeout = 15000, REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 1, cluster_type = wsfc )
for database "Sales ""EU""", [stock]
replica on
  n'SQL-1\PROD' with (endpoint_url = 'tcp://sql-1:5022', availability_mode = synchronous_commit,
      failover_mode = automatic, seeding_mode = automatic, backup_priority = 0, session_timeout = 5,
      primary_role (read_only_routing_list = (('SQL-2', N'O''Brien'), 'SQL-3'),
                    read_write_routing_url = N'tcp://sql-1:1433', allow_connections = all)),
  'SQL-2' With (Availability_Mode = Synchronous_Commit, Failover_Mode = Automatic,
      secondary_role (read_only_routing_url = N'tcp://sql-2:1433', allow_connections = all)),
  N'O''Brien' WITH (AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, -- reporting
      SECONDARY_ROLE (ALLOW_CONNECTIONS = READ_ONLY, READ_ONLY_ROUTING_URL = N'tcp://obrien:1433')),
  'SQL-3' WITH (AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL,
      SECONDARY_ROLE (READ_ONLY_ROUTING_URL = N'tcp://sql-3:1433'))
  go   -- end of the first batch
alter availability group [sales]]ag] failover
ALTER DATABASE "Sales ""EU""" SET HADR SUSPEND;;
