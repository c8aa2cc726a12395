-- A sweep is one job over every service: action `sweep`, service `*`.
alter table jobs drop constraint jobs_action_check;
alter table jobs add constraint jobs_action_check check (action in ('check', 'add', 'fix', 'sweep'));
