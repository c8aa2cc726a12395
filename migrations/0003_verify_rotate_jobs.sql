-- `verify` probes a service's login path and is recorded like a check; `rotate` replaces its
-- client secret (under the same per-service lock as `fix`). Both are ordinary per-service jobs.
alter table jobs drop constraint jobs_action_check;
alter table jobs add constraint jobs_action_check check (action in ('check', 'add', 'fix', 'sweep', 'verify', 'rotate'));
