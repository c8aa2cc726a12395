-- A sweep is not a service: `status` reads the last sweep from its job row. The `*` row an
-- earlier version left in service_state after a failed sweep outlived every later success.
delete from service_state where service = '*';
